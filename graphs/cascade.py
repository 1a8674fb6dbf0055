"""The compiled cascade for LangGraph Studio (``langgraph dev``) and the LangGraph server.

No custom checkpointer: the LangGraph server supplies its own (a custom one breaks ``langgraph dev``).
Input: ``{"ticker": "PETR4"}`` (optionally ``"as_of": "2025-06-30"``). Config comes from
config.yaml, .env and the environment, exactly as for the CLI.
"""

from agent.config import load_settings
from agent.deps import build_deps
from agent.graph import build_graph

deps = build_deps(load_settings())
deps.origin = "studio"
graph = build_graph(deps)
