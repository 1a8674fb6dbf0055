"""End to end through the REAL embedded models (the default profile via llama.cpp): no fakes, no network.

The contract tests check a valid, tagged record naming each layer's model; the judgment tests check
that at temperature 0 and a fixed seed, a clearly negative case is discarded at layer 1 and a clearly
favourable one passes it, with every answer valid and consistent.
"""

from __future__ import annotations

import json

import pytest

from agent.config import load_settings
from agent.deps import build_deps
from agent.eval.ollama_stub import closed_port_url
from agent.graph import build_graph, run_cascade
from agent.llm.providers import embedded_choice, embedded_runtime_available
from agent.record import DecisionRecord
from agent.store.jsonl import read_jsonl
from tests.conftest import require_shared_data
from tests.test_cli import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(embedded_runtime_available() is not None, reason=f"{embedded_runtime_available()}"),
]


DEFAULT_MODELS = embedded_choice(load_settings(env_file=None, environ={}), "default").models


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
        if layer["provider"] == "embedded":  # the model that answered, per layer (default profile)
            assert layer["model"] == DEFAULT_MODELS[layer["layer"]]
            assert layer["tokens_in"] > 0 and layer["tokens_out"] > 0
    if record["discarded_at"]:
        assert record["decision"] == "HOLD"
    assert "llm:embedded" in record["defaults_in_use"]


def test_one_shot_on_sim_with_the_embedded_model(tmp_path):
    record, stderr = one_shot(tmp_path, "--source", "sim")
    check_record(record, "sim")
    assert "market:sim" in record["defaults_in_use"]
    assert "EMBEDDED" in stderr and DEFAULT_MODELS["sentiment"] in stderr  # announced loudly, per layer
    written = [r for p in (tmp_path / "logs").rglob("*.jsonl") for r in read_jsonl(p)]
    assert written == [record]


def test_one_shot_on_real_csv_with_the_embedded_model(tmp_path):
    daily = require_shared_data()
    record, _ = one_shot(tmp_path, "--source", "csv", "--data-dir", str(daily), "--as-of", "2025-06-30")
    check_record(record, "csv")
    assert record["bar_date"] == "2025-06-30"
    assert record["indicators"]["close"] > 0


def test_loop_runs_cycles_with_the_embedded_model(tmp_path):
    # the tiny profile: this checks the loop's process contract, not judgment (the fastest models serve it)
    env = {"LOG_DIR": str(tmp_path / "logs"), "B3_TICKERS": "PETR4,VALE3", "LLM_PROVIDER": "embedded",
           "EMBEDDED_PROFILE": "tiny",
           "DATABASE_PATH": str(tmp_path / "data" / "agent.db"),  # never the repository's own ledger
           "LLM_CACHE_PATH": str(tmp_path / "data" / "llm_cache.db"), "DASHBOARD_ENABLED": "false",
           "METRICS_ENABLED": "false"}
    out = run_cli("--cycles", "2", "--interval", "10", "--source", "sim", env=env, module="agent.loop")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("heartbeat: cycle") == 2
    records = [r for p in (tmp_path / "logs").rglob("*.jsonl") for r in read_jsonl(p)]
    assert sorted(r["ticker"] for r in records) == ["PETR4", "PETR4", "VALE3", "VALE3"]


@pytest.fixture(scope="module")
def real_graph():
    daily = require_shared_data()
    settings = load_settings(env_file=None, environ={}, overrides={
        ("llm", "provider"): "embedded", ("market", "source"): "csv", ("market", "data_dir"): daily})
    assert settings.llm.temperature == 0.0 and settings.embedded.seed == 42
    return build_graph(build_deps(settings, sink=False))


def llm_layers(record: dict) -> list[dict]:
    return [layer for layer in record["layers"] if layer["provider"] == "embedded"]


def test_clearly_bad_news_is_discarded_at_layer_1(real_graph):
    """On a day whose price action alone passes layer 1 (the test below), bad news stops the cascade there,
    with a valid, consistent answer: the score comes before the label in layer 1's answer, so the model no
    longer writes its confidence after "negative" (which the consistency rule refused)."""
    bad = "Petrobras reports a record quarterly loss, suspends its dividend and its shares plunge 20%"
    record = run_cascade(real_graph, "PETR4", as_of="2024-01-09", headlines=[bad])
    assert record["discarded_at"] == "sentiment" and record["decision"] == "HOLD"
    first = record["layers"][0]
    assert first["error"] is None, first["reason"]
    assert first["output"]["sentiment"] == "negative" and first["output"]["score"] < 0.5


def test_a_steady_uptrend_passes_layer_1_with_consistent_answers(real_graph):
    # PETR4 on 2024-01-09: +14% over 20 days, close above its 20/50/200-day averages, RSI 65, no news
    record = run_cascade(real_graph, "PETR4", as_of="2024-01-09")
    first = record["layers"][0]
    assert first["layer"] == "sentiment" and first["passed"], first["reason"]
    assert first["output"]["sentiment"] == "positive" and first["output"]["score"] >= 0.75
    assert len(llm_layers(record)) >= 2  # the cascade went on past layer 1
    for layer in llm_layers(record):
        assert layer["error"] is None, f"{layer['layer']}: {layer['reason']}"  # valid and consistent
        assert layer["model"] == DEFAULT_MODELS[layer["layer"]]
