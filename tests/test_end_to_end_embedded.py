"""End to end through the REAL embedded model (SmolLM2-135M via llama.cpp): no fakes, no network.

The model is weak; these tests check the contract (a valid, tagged record), never its judgment.
"""

from __future__ import annotations

import json
import socket

import pytest

from agent.llm.providers import embedded_runtime_available
from agent.record import DecisionRecord
from agent.store.jsonl import read_jsonl
from tests.conftest import require_shared_data
from tests.test_cli import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(embedded_runtime_available() is not None, reason=f"{embedded_runtime_available()}"),
]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def one_shot(tmp_path, *args: str) -> tuple[dict, str]:
    # Provider "auto" with no Ollama listening: the fallback to the embedded model is part of the test.
    env = {"LOG_DIR": str(tmp_path / "logs"), "OLLAMA_HOST": closed_port_url()}
    out = run_cli("--ticker", "PETR4", "--json", *args, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line: the record"
    return json.loads(lines[0]), out.stderr


def check_record(record: dict, source: str) -> None:
    DecisionRecord.model_validate(record)
    assert record["llm_provider"] == "embedded"
    assert record["data_source"] == source
    assert record["decision"] in ("BUY", "HOLD")
    assert 1 <= len(record["layers"]) <= 5
    for layer in record["layers"]:
        assert layer["provider"] in ("embedded", "code")
        assert layer["latency_ms"] >= 0 and layer["reason"]
        if layer["provider"] == "embedded":
            assert layer["model"] == "SmolLM2-135M-Instruct-Q4_1"
    if record["discarded_at"]:
        assert record["decision"] == "HOLD"
    assert "llm:embedded" in record["defaults_in_use"]


def test_one_shot_on_sim_with_the_embedded_model(tmp_path):
    record, stderr = one_shot(tmp_path, "--source", "sim")
    check_record(record, "sim")
    assert "market:sim" in record["defaults_in_use"]
    assert "EMBEDDED" in stderr and "NOT meaningful" in stderr  # announced loudly
    written = [r for p in (tmp_path / "logs").rglob("*.jsonl") for r in read_jsonl(p)]
    assert written == [record]


def test_one_shot_on_real_csv_with_the_embedded_model(tmp_path):
    daily = require_shared_data()
    record, _ = one_shot(tmp_path, "--source", "csv", "--data-dir", str(daily), "--as-of", "2025-06-30")
    check_record(record, "csv")
    assert record["bar_date"] == "2025-06-30"
    assert record["indicators"]["close"] > 0


def test_loop_runs_cycles_with_the_embedded_model(tmp_path):
    env = {"LOG_DIR": str(tmp_path / "logs"), "B3_TICKERS": "PETR4,VALE3", "LLM_PROVIDER": "embedded",
           "DATABASE_PATH": str(tmp_path / "data" / "agent.db"),  # never the repository's own ledger
           "LLM_CACHE_PATH": str(tmp_path / "data" / "llm_cache.db"), "DASHBOARD_ENABLED": "false",
           "METRICS_ENABLED": "false"}
    out = run_cli("--cycles", "2", "--interval", "10", "--source", "sim", env=env, module="agent.loop")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("heartbeat: cycle") == 2
    records = [r for p in (tmp_path / "logs").rglob("*.jsonl") for r in read_jsonl(p)]
    assert sorted(r["ticker"] for r in records) == ["PETR4", "PETR4", "VALE3", "VALE3"]
