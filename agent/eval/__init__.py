"""Offline evaluation of the LLM layers and the speed bench (python -m agent.eval, python -m agent.eval.bench)."""
