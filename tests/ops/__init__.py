"""Tests of agent/ops/."""
