"""Tests of agent/market/."""
