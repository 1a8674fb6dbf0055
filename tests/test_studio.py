"""LangGraph Studio entry point: langgraph.json points at a compiled graph without a custom checkpointer."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from agent.config import LAYER_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_langgraph_json_points_at_the_compiled_cascade(monkeypatch):
    spec = json.loads((ROOT / "langgraph.json").read_text())
    path, attr = spec["graphs"]["cascade"].split(":")
    assert (ROOT / path).is_file()
    monkeypatch.setenv("LLM_PROVIDER", "embedded")
    module = importlib.import_module(path.removeprefix("./").removesuffix(".py").replace("/", "."))
    graph = getattr(module, attr)
    assert graph.checkpointer is None, "a custom checkpointer breaks `langgraph dev`"
    nodes = set(graph.get_graph().nodes)
    assert {"load_market_data", "compute_indicators", "compute_risk", "decide", *LAYER_NAMES} <= nodes
