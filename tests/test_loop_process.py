"""``python -m agent.loop`` as a real process: the log layout, /metrics while it runs, SIGTERM, and
the documented command with the real embedded model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agent.config import LAYER_NAMES
from agent.eval.ollama_stub import OllamaStub
from agent.eval.passing import PASS
from agent.llm.providers import embedded_runtime_available
from agent.store.jsonl import DecisionSink
from tests.conftest import make_settings
from tests.test_cli import ROOT, closed_port


def loop_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update({"LOG_DIR": str(tmp_path / "logs"), "DATABASE_PATH": str(tmp_path / "data" / "agent.db"),
                "LLM_CACHE_PATH": str(tmp_path / "data" / "llm_cache.db"),
                "PROMETHEUS_PORT": str(closed_port()), "DASHBOARD_PORT": str(closed_port()),
                "B3_TICKERS": "PETR4,VALE3", **extra})
    return env


def start_loop(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agent.loop", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def poll_while_running(proc: subprocess.Popen, ask, deadline_s: float = 240):
    """The first truthy answer of ``ask()`` (HTTP errors are retried), or None if the process ended first."""
    end = time.monotonic() + deadline_s
    while proc.poll() is None and time.monotonic() < end:
        try:
            answer = ask()
            if answer:
                return answer
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return None


def scrape_while_running(proc: subprocess.Popen, port: str, deadline_s: float = 240) -> str | None:
    """The first /metrics answer that already counts a layer result, or None if the process ended first."""
    def ask() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        counted = 'b3agent_layer_results_total{layer="sentiment",outcome="' in text and "b3agent_cycles_total" in text
        return text if counted else None
    return poll_while_running(proc, ask, deadline_s)


def dashboard_after_first_cycle(proc: subprocess.Popen, port: str, deadline_s: float = 240) -> dict | None:
    """What the dashboard shows once the loop has recorded its first cycle: health and the latest decisions."""
    base = f"http://127.0.0.1:{port}"

    def ask() -> dict | None:
        health = httpx.get(f"{base}/api/health", timeout=5).json()
        if not health.get("last_cycle"):
            return None
        return {"health": health, "latest": httpx.get(f"{base}/api/decisions/latest", timeout=5).json(),
                "page": httpx.get(f"{base}/", timeout=5)}
    return poll_while_running(proc, ask, deadline_s)


def check_dashboard_shows_the_last_cycle(shown: dict | None, logs: Path, tickers: set[str]) -> None:
    assert shown is not None, "the dashboard never showed a finished cycle while the loop ran"
    assert shown["page"].status_code == 200 and "Latest decision per ticker" in shown["page"].text
    assert shown["health"]["status"] == "ok" and shown["health"]["last_cycle"]["cycle"] >= 1
    latest = {d["ticker"]: d for d in shown["latest"]["decisions"]}
    assert set(latest) == tickers
    seen_until = max(d["ts"] for d in latest.values())  # the loop may have gone on after the page was read
    records = [r for r in DecisionSink(logs).records() if r["ts"] <= seen_until]
    newest = {r["ticker"]: r for r in records}
    assert {t: (d["decision_id"], d["ts"], d["origin"]) for t, d in latest.items()} == \
        {t: (r["decision_id"], r["ts"], "loop") for t, r in newest.items()}


def check_log_layout(logs: Path, tickers: int, cycles: int) -> list[dict]:
    for name in ("trading-agent.log", "errors.log", "performance.log", "trades.jsonl"):
        assert (logs / name).is_file(), f"{name} missing from LOG_DIR"
    perf = (logs / "performance.log").read_text()
    assert "layer ticker=PETR4 layer=sentiment" in perf and f"cycle n={cycles} " in perf
    assert "heartbeat: cycle" in (logs / "trading-agent.log").read_text()
    records = list(DecisionSink(logs).records())
    assert len(records) == tickers * cycles
    assert all(p.parent.name[:4].isdigit() for _, p in DecisionSink(logs).files())
    return records


@pytest.fixture
def stub():
    models = {getattr(make_settings().layers, layer).model: json.dumps(PASS[layer]) for layer in LAYER_NAMES}
    with OllamaStub(models=list(models), content=models) as s:
        yield s


def test_sigterm_finishes_the_ticker_in_flight_and_exits_0(tmp_path, stub):
    env = loop_env(tmp_path, LLM_PROVIDER="ollama", OLLAMA_HOST=stub.url, ANALYSIS_INTERVAL="1")
    proc = start_loop(env, "--source", "sim")
    assert scrape_while_running(proc, env["PROMETHEUS_PORT"], 120) is not None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "received SIGTERM" in err and "stopped after" in err
    logs = tmp_path / "logs"
    assert (logs / "trades.jsonl").is_file() and (logs / "performance.log").is_file()
    # every record written is complete: a graceful stop never leaves a torn line
    for _, path in DecisionSink(logs).files():
        assert path.read_bytes().endswith(b"\n")


def test_the_dashboard_beside_the_loop_shows_the_decisions_of_the_last_cycle(tmp_path, stub):
    """`make run` serves the dashboard too (dashboard.enabled): once a cycle ends, its decisions are on the page."""
    env = loop_env(tmp_path, LLM_PROVIDER="ollama", OLLAMA_HOST=stub.url, ANALYSIS_INTERVAL="3600")
    proc = start_loop(env, "--source", "sim")
    try:
        shown = dashboard_after_first_cycle(proc, env["DASHBOARD_PORT"], 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert f"dashboard: http://127.0.0.1:{env['DASHBOARD_PORT']}/" in err
    check_dashboard_shows_the_last_cycle(shown, tmp_path / "logs", {"PETR4", "VALE3"})


def test_secrets_never_reach_any_log(tmp_path, stub):
    secret = "brapi-secret-token-123456"
    env = loop_env(tmp_path, LLM_PROVIDER="ollama", OLLAMA_HOST=stub.url, BRAPI_TOKEN=secret,
                   TELEGRAM_TOKEN="123456:telegram-secret", SMTP_PASSWORD="smtp-secret-pw")
    proc = start_loop(env, "--source", "sim", "--cycles", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    texts = [out, err] + [p.read_text() for p in (tmp_path / "logs").rglob("*") if p.is_file()]
    for text in texts:
        for value in (secret, "telegram-secret", "smtp-secret-pw"):
            assert value not in text


@pytest.mark.slow
@pytest.mark.skipif(embedded_runtime_available() is not None, reason=f"{embedded_runtime_available()}")
def test_two_cycles_with_the_embedded_model_leave_the_log_layout_and_serve_metrics(tmp_path):
    """The issue's command: ``python -m agent.loop --cycles 2 --source sim`` with the embedded model."""
    # a pause between the cycles to look at /metrics and the dashboard: cycle 2 is answered from the LLM cache
    # and ends at once, so without one the process would be gone before the first look
    # the tiny profile: the process, its metrics and its dashboard are under test here, not judgment
    env = loop_env(tmp_path, OLLAMA_HOST=f"http://127.0.0.1:{closed_port()}", ANALYSIS_INTERVAL="20",
                   EMBEDDED_PROFILE="tiny")
    proc = start_loop(env, "--cycles", "2", "--source", "sim")
    scraped = scrape_while_running(proc, env["PROMETHEUS_PORT"])
    shown = dashboard_after_first_cycle(proc, env["DASHBOARD_PORT"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert scraped is not None, "no /metrics answer while the loop ran"
    assert "b3agent_layer_latency_seconds_bucket" in scraped and "b3agent_kill_switch_state" in scraped
    assert "embedded" in err.lower() and "heartbeat: cycle 2" in err
    records = check_log_layout(tmp_path / "logs", tickers=2, cycles=2)
    assert all(r["llm_provider"] == "embedded" and "llm:embedded" in r["defaults_in_use"] for r in records)
    assert all("market:sim" in r["defaults_in_use"] for r in records)
    check_dashboard_shows_the_last_cycle(shown, tmp_path / "logs", {"PETR4", "VALE3"})
    assert set(shown["latest"]["defaults_in_use"]) == {"llm:embedded", "market:sim"}  # the page announces them
    # cycle 2 re-decides the same simulated bar: every answer that passed validation is replayed from the LLM
    # cache; one that failed validation was never cached, so that question is asked again
    first, second = records[:2], records[2:]
    assert all(not layer["cached"] for r in first for layer in r["layers"])
    for before, after in zip(first, second):
        replayable = [layer["error"] is None and layer["provider"] == "embedded" for layer in before["layers"]]
        assert [layer["cached"] for layer in after["layers"]][:len(replayable)] == replayable[:len(after["layers"])]
    assert [r["decision_id"] for r in second] == [r["decision_id"] for r in first]
