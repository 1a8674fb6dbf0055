"""Tests of agent/store/."""
