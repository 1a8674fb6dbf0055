"""Tests of agent/eval/."""
