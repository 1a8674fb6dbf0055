"""The original guide's full variable block, pasted into .env as its step 5 says, starts the agent
(issue 14): its names, units and model variables mean what the guide says.

The fixture keeps the guide's keys and values; the tests only point LOG_DIR, DATABASE_PATH, OLLAMA_HOST
and the ports away from the guide's machine through the environment, which wins over .env.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import LAYER_NAMES, load_settings
from agent.eval.ollama_stub import OllamaStub
from agent.store.jsonl import DecisionSink
from tests.conftest import PASS
from tests.test_cli import ROOT, closed_port

GUIDE_ENV = Path(__file__).resolve().parents[1] / "fixtures" / "guide.env"
GUIDE_MODELS = {"sentiment": "smollm2:1.7b-instruct-q4_K_M", "technical": "mistral:7b-instruct-q4_K_M",
                "risk": "deepseek-r1:8b", "data_validation": "qwen2.5-coder:7b-instruct-q4_K_M",
                "final_score": "gemma3:4b-it"}


def test_the_guide_block_loads_with_the_guides_meaning():
    s = load_settings(env_file=GUIDE_ENV, environ={})
    assert {layer: s.layers.model_for(layer) for layer in LAYER_NAMES} == GUIDE_MODELS  # FAST = 1 ... SENTIMENT = 5
    assert (s.risk.max_position_size, s.risk.max_loss_per_trade, s.risk.profit_target) == (1000, 500.0, 1000.0)
    assert s.tickers == ("PETR4", "VALE3", "IBOV") and s.analysis_interval_s == 60 and s.ollama.timeout_s == 30
    assert s.market.brapi_base_url == "https://brapi.dev/api"
    assert s.ledger_path == Path("/opt/trading-agent-b3/data/agent.db")  # DATABASE_PATH is a folder there
    assert s.metrics.enabled and s.metrics.port == 8000 and s.metrics.grafana_port == 3000
    assert s.alerts.slack_webhook_url is not None and s.alerts.email_from == "seu@email.com"
    assert s.secrets.smtp_password.get_secret_value() == "app_password"
    assert s.database_url is not None  # the guide's Postgres: the loop's ledger, checked when the loop starts


def guide_env(tmp_path: Path, stub: OllamaStub, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update({"LOG_DIR": str(tmp_path / "logs"), "DATABASE_PATH": str(tmp_path / "data"),
                "OLLAMA_HOST": stub.url, "PROMETHEUS_PORT": str(closed_port()), "DASHBOARD_PORT": str(closed_port()),
                **extra})
    return env


def run(module: str, env: dict[str, str], *args: str, env_file: Path = GUIDE_ENV) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "--env-file", str(env_file), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def stub():
    answers = {GUIDE_MODELS[layer]: json.dumps(PASS[layer]) for layer in LAYER_NAMES}
    with OllamaStub(models=list(answers), content=answers) as s:
        yield s


def test_one_decision_runs_with_the_guide_block_and_asks_layer_1_the_fast_model(tmp_path, stub):
    out = run("agent.graph", guide_env(tmp_path, stub), "--ticker", "PETR4", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(out.stdout)
    asked = [(layer["layer"], layer["model"]) for layer in record["layers"] if layer["provider"] == "ollama"]
    assert asked and all(GUIDE_MODELS[layer] == model for layer, model in asked)
    assert stub.requests[0]["model"] == "smollm2:1.7b-instruct-q4_K_M"  # layer 1 asks OLLAMA_MODEL_FAST
    for i, layer in enumerate(LAYER_NAMES, start=1):  # the banner lists each layer's model
        assert f"layer {i} {layer}" in out.stderr and GUIDE_MODELS[layer] in out.stderr
    assert record["risk"]["shares"] <= 1000 and record["risk"]["max_loss"] <= 500 + 1e-6
    assert not (tmp_path / "data").exists()  # the one-shot needs no ledger (nor the guide's Postgres)


def test_the_loop_stops_at_start_up_naming_database_url_and_its_server(tmp_path, stub):
    out = run("agent.loop", guide_env(tmp_path, stub), "--cycles", "1")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "error: DATABASE_URL: cannot connect to Postgres at localhost:5432/trading_db" in out.stderr
    assert "Traceback" not in out.stderr and "user:pass" not in out.stderr
    assert list(DecisionSink(tmp_path / "logs").records()) == []  # nothing was decided


def test_without_database_url_one_loop_cycle_runs_with_the_ledger_in_the_data_folder(tmp_path, stub):
    env_file = tmp_path / "guide-without-database-url.env"
    env_file.write_text("".join(line for line in GUIDE_ENV.read_text().splitlines(keepends=True)
                                if not line.startswith("DATABASE_URL=")))
    out = run("agent.loop", guide_env(tmp_path, stub), "--cycles", "1", env_file=env_file)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "stopped after 1 cycle(s)" in out.stderr
    records = {r["ticker"]: r for r in DecisionSink(tmp_path / "logs").records()}
    assert set(records) == {"PETR4", "VALE3", "IBOV"}
    assert records["IBOV"]["instrument"] == "index" and records["IBOV"]["decision"] == "HOLD"
    assert (tmp_path / "data" / "agent.db").is_file()  # DATABASE_PATH as a folder holds the ledger
    for r in records.values():
        assert r["risk"]["shares"] <= 1000 and r["risk"]["max_loss"] <= 500 + 1e-6


@pytest.mark.slow
def test_one_decision_with_the_guides_own_ollama_host_falls_back_to_the_embedded_model(tmp_path):
    """The guide's OLLAMA_HOST (a homelab address) is left as it is: no Ollama answers there, so LLM_PROVIDER=auto
    takes the embedded model, says so, and the decision is made and recorded."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env["LOG_DIR"] = str(tmp_path / "logs")  # the guide's /opt path is not this machine's
    out = run("agent.graph", env, "--ticker", "VALE3", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(out.stdout)
    assert record["llm_provider"] == "embedded" and "llm:embedded" in record["defaults_in_use"]
    assert "10.41.10.151" in out.stderr and "EMBEDDED" in out.stderr
    assert [r["ticker"] for r in DecisionSink(tmp_path / "logs").records()] == ["VALE3"]
