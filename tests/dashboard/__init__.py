"""Tests of agent/dashboard/."""
