"""Tests of agent/layers/."""
