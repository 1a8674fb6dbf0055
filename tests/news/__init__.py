"""Tests of agent/news/."""
