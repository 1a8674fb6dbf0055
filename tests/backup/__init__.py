"""Tests of agent/backup/."""
