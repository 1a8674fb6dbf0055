"""Tests of agent/trading/."""
