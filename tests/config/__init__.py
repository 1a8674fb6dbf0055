"""Tests of agent/config/."""
