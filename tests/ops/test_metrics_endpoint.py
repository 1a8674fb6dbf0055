"""The Prometheus endpoint, scraped over HTTP on loopback after a real loop cycle with fake models."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.ops.metrics import COUNTERS
from agent.ops.metrics_server import serve_metrics
from tests.conftest import DISCARD
from tests.test_loop import setup_loop


def scrape(port: int) -> dict[str, list]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


@pytest.fixture
def server():
    srv = serve_metrics("127.0.0.1", 0)
    yield srv
    srv.close()


def value(samples, name, **labels):
    hits = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert hits, f"no sample {name} {labels}"
    return hits[0]


def test_metrics_after_a_cycle_show_the_funnel_latency_decisions_and_portfolio(tmp_path, server):
    loop, _, _ = setup_loop(tmp_path, tickers=("PETR4", "VALE3"), answers={"technical": DISCARD["technical"]})
    loop.run_cycle()
    m = scrape(server.port)

    funnel = m["b3agent_layer_results"]
    assert value(funnel, "b3agent_layer_results_total", layer="sentiment", outcome="pass") == 2
    assert value(funnel, "b3agent_layer_results_total", layer="technical", outcome="discard") == 2
    assert value(funnel, "b3agent_layer_results_total", layer="risk", outcome="pass") == 0  # zeros are visible
    latency = m["b3agent_layer_latency_seconds"]
    assert value(latency, "b3agent_layer_latency_seconds_count", layer="technical", model="fake-technical") == 2
    assert value(latency, "b3agent_layer_latency_seconds_bucket", layer="technical", model="fake-technical",
                 le="+Inf") == 2
    assert value(m["b3agent_decisions"], "b3agent_decisions_total", decision="HOLD") == 2
    assert value(m["b3agent_decisions"], "b3agent_decisions_total", decision="BUY") == 0
    assert value(m["b3agent_kill_switch_state"], "b3agent_kill_switch_state", state="RUNNING") == 1
    assert value(m["b3agent_kill_switch_state"], "b3agent_kill_switch_state", state="HALTED") == 0
    assert value(m["b3agent_portfolio_equity"], "b3agent_portfolio_equity") == pytest.approx(
        loop.settings.risk.capital)
    assert value(m["b3agent_portfolio_drawdown"], "b3agent_portfolio_drawdown") == 0
    assert value(m["b3agent_last_cycle_success_timestamp_seconds"],
                 "b3agent_last_cycle_success_timestamp_seconds") > 1.6e9
    assert value(m["b3agent_last_bar_age_days"], "b3agent_last_bar_age_days", ticker="PETR4") == 0
    assert value(m["b3agent_cycle_duration_seconds"], "b3agent_cycle_duration_seconds_count") == 1


def test_invalid_llm_output_and_errors_are_counted_by_kind(tmp_path, server):
    loop, _, _ = setup_loop(tmp_path, tickers=("PETR4",), answers={"sentiment": "not json at all"})
    loop.run_cycle()
    m = scrape(server.port)
    samples = m["b3agent_llm_invalid_outputs"]
    assert any(s.labels["layer"] == "sentiment" and s.value == 1 for s in samples)


def test_the_endpoint_binds_to_loopback(server):
    assert server.server.server_address[0] == "127.0.0.1"


def test_a_busy_port_is_logged_and_counted_not_fatal():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert serve_metrics("127.0.0.1", busy.getsockname()[1]) is None
    assert COUNTERS.get("metrics_server_errors_total") == 1


def test_the_grafana_dashboard_only_uses_metrics_the_agent_exports():
    import json
    import re
    from pathlib import Path

    from agent.ops.metrics_server import HELP

    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "deploy" / "grafana" / "b3-agent-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"b3agent_(\w+)", e)}
    assert used and used <= set(HELP), f"unknown metrics in the dashboard: {used - set(HELP)}"
    # and every documented metric is really produced somewhere in the code
    sources = {str(p.relative_to(root)): p.read_text() for p in (root / "agent").rglob("*.py")}
    server = "agent/ops/metrics_server.py"
    sources[server] = sources[server].split("\nHELP = {", 1)[1].split("\n}\n", 1)[1]
    code = "\n".join(sources.values())
    produced = lambda name: f'"{name}"' in code or f'"{name.removeprefix("portfolio_")}"' in code  # noqa: E731
    assert [name for name in HELP if not produced(name)] == []
