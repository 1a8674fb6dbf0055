"""Tests of agent/doctor/."""
