"""LangGraph Studio entry point: langgraph.json points at a compiled graph without a custom checkpointer."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


@pytest.mark.slow
def test_langgraph_dev_serves_one_decision_over_http(tmp_path):
    """`langgraph dev` (what `make studio` runs) imports the graph and answers a run on loopback."""
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        pytest.skip("langgraph-cli is not installed (make setup installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
           "LLM_PROVIDER": "embedded", "LOG_DIR": str(tmp_path / "logs"), "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    proc = subprocess.Popen([str(cli), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser",
                             "--no-reload"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail("langgraph dev did not come up within 120 s")
        resp = httpx.post(f"{base}/runs/wait", timeout=180,
                          json={"assistant_id": "cascade", "input": {"ticker": "PETR4", "as_of": "2025-06-30"}})
        assert resp.status_code == 200, resp.text
        record = resp.json()["record"]
        assert record["ticker"] == "PETR4" and record["decision"] in ("BUY", "HOLD")
        assert record["llm_provider"] == "embedded" and record["bar_date"] == "2025-06-30"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
