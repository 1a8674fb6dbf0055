"""Tests of agent/backtest/."""
