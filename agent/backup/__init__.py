"""Back up and restore the agent's state (python -m agent.backup)."""
