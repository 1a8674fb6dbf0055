"""The Prometheus ``/metrics`` endpoint: the in-process registry (agent/ops/metrics.py), read on every scrape.

It binds to PROMETHEUS_BIND (127.0.0.1 by default) on PROMETHEUS_PORT. A port already in use is
logged and counted, never fatal: trading does not depend on being watched.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from loguru import logger
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from agent.config import LOOPBACK
from agent.ops.metrics import COUNTERS, Counters

PREFIX = "b3agent_"

HELP = {
    "layer_results_total": "Cascade layer outcomes (pass/discard) per layer: the funnel",
    "layer_latency_seconds": "Wall time of one cascade layer, per layer and model",
    "decisions_total": "Decisions by type (BUY/HOLD)",
    "llm_invalid_outputs_total": "LLM answers that failed validation or calls that failed, by layer and kind",
    "llm_retries_total": "LLM calls retried after a connection error",
    "llm_calls_total": "LLM calls made (cache misses), per layer",
    "llm_model_info": "The model each layer asks (value 1), with its provider",
    "llm_tokens_total": "LLM tokens per layer and model, direction in (prompt) or out (answer); cache replays excluded",
    "model_switches_last_cycle": "Model switches in the last cycle (layer-major: at most one per layer per host)",
    "model_switches_total": "Consecutive LLM calls on one host that asked for a different model (likely reloads)",
    "llm_cache_total": "LLM answer cache lookups by result (hit/miss), per layer",
    "llm_claim_mismatches_total": "Indicator values an LLM misquoted",
    "tool_errors_total": "Tool-node failures (market data, indicators, risk) by stage and kind",
    "ticker_failures_total": "Tickers whose cascade raised, by kind",
    "ticker_backoffs_total": "Ticker analyses skipped while backing off a repeated failure",
    "cycle_overruns_total": "Cycles that took longer than ANALYSIS_INTERVAL",
    "cycle_duration_seconds": "Wall time of one loop cycle over every ticker",
    "cycles_total": "Loop cycles completed",
    "loop_stalls_total": "Times the watchdog found no completed cycle for too long",
    "last_cycle_success_timestamp_seconds": "Unix time of the last completed cycle",
    "last_bar_age_days": "Calendar days between now and the last daily bar seen, per ticker (data staleness)",
    "trades_total": "Paper trades by action (open, close_stop, close_take_profit)",
    "portfolio_equity": "Paper equity in BRL (cash plus positions at the last close)",
    "portfolio_cash": "Paper cash in BRL",
    "portfolio_open_positions": "Open paper positions",
    "portfolio_pending_orders": "BUY orders waiting for the next bar's open",
    "portfolio_drawdown": "Drawdown from peak equity (0..1)",
    "portfolio_daily_pnl": "Return since the start of the B3 day (fraction)",
    "kill_switch_state": "1 for the current kill-switch state (RUNNING, NO_NEW_BUYS, HALTED)",
    "alerts_sent_total": "Alerts delivered, by channel",
    "alerts_failed_total": "Alerts that failed, by channel and kind",
    "alerts_dropped_total": "Alerts dropped before sending (queue full)",
    "metrics_server_errors_total": "Failures to start the metrics endpoint",
}


def _help(name: str) -> str:
    return HELP.get(name, name.replace("_", " "))


def _label_names(rows: list[dict[str, str]]) -> list[str]:
    return sorted({k for labels in rows for k in labels})


class RegistryCollector(Collector):
    """Exposes every counter, gauge and histogram of an agent.metrics registry, prefixed ``b3agent_``."""

    def __init__(self, registry: Counters = COUNTERS):
        self.registry = registry

    def collect(self):
        yield from self._families(self.registry.snapshot(), CounterMetricFamily, strip="_total")
        yield from self._families(self.registry.gauges(), GaugeMetricFamily)
        by_name: dict[str, list] = {}
        for name, labels, buckets, total, _count in self.registry.histograms():
            by_name.setdefault(name, []).append((labels, buckets, total))
        for name, rows in by_name.items():
            keys = _label_names([labels for labels, _, _ in rows])
            family = HistogramMetricFamily(PREFIX + name, _help(name), labels=keys)
            for labels, buckets, total in rows:
                family.add_metric([labels.get(k, "") for k in keys], buckets, total)
            yield family

    @staticmethod
    def _families(rows, family_type, strip: str = ""):
        by_name: dict[str, list] = {}
        for name, labels, value in rows:
            by_name.setdefault(name, []).append((labels, value))
        for name, samples in by_name.items():
            keys = _label_names([labels for labels, _ in samples])
            base = name[: -len(strip)] if strip and name.endswith(strip) else name
            family = family_type(PREFIX + base, _help(name), labels=keys)
            for labels, value in samples:
                family.add_metric([labels.get(k, "") for k in keys], value)
            yield family


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(bind: str, port: int, registry: Counters = COUNTERS) -> MetricsServer | None:
    """Start ``/metrics`` on ``bind:port`` in a daemon thread (port 0: any free port). None if it cannot bind."""
    prom = CollectorRegistry(auto_describe=True)
    prom.register(RegistryCollector(registry))
    try:
        server, thread = start_http_server(port, addr=bind, registry=prom)
    except OSError as exc:
        COUNTERS.inc("metrics_server_errors_total", kind=type(exc).__name__)
        logger.error("metrics: cannot listen on {}:{} ({}); running without /metrics", bind, port, exc)
        return None
    logger.info("metrics: Prometheus endpoint on http://{}:{}/metrics", bind, server.server_port)
    if bind not in LOOPBACK:
        logger.warning("metrics: {} is not loopback; anyone on the network can read the agent's metrics", bind)
    return MetricsServer(server, thread)
