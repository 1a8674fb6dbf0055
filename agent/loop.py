"""The continuous loop behind ``make run``: every ANALYSIS_INTERVAL, every ticker through the cascade.

A failing ticker never stops the loop; SIGINT/SIGTERM finish the ticker in flight and exit 0.
(Paper broker, market-calendar gating, kill switches and metrics come with the loop issue.)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from loguru import logger

from agent.cli import add_run_flags, exit_code, start
from agent.errors import ConfigError, ProviderError
from agent.graph import build_graph, run_cascade
from agent.metrics import COUNTERS


def run_cycle(graph, tickers: tuple[str, ...], stop: threading.Event) -> dict[str, int]:
    """One pass over the tickers. Returns counts of BUY, HOLD and failed tickers."""
    counts = {"BUY": 0, "HOLD": 0, "failed": 0}
    for ticker in tickers:
        if stop.is_set():
            break
        try:
            record = run_cascade(graph, ticker)
            counts[record["decision"]] += 1
        except Exception as exc:  # noqa: BLE001 - one ticker must never stop the loop
            counts["failed"] += 1
            COUNTERS.inc("ticker_failures_total", ticker=ticker, kind=type(exc).__name__)
            logger.exception("{}: cascade failed: {}", ticker, exc)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.loop", description="Run the cascade over B3_TICKERS forever.")
    p.add_argument("--cycles", type=int, default=0, help="stop after N cycles (0 = run until stopped)")
    p.add_argument("--interval", type=int, help="seconds between cycles (env ANALYSIS_INTERVAL)")
    add_run_flags(p)
    args = p.parse_args(argv)
    if args.cycles < 0:
        p.error("--cycles must be >= 0")

    try:
        deps = start(args, {("analysis_interval_s",): args.interval})
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)
    settings = deps.settings
    graph = build_graph(deps)

    stop = threading.Event()

    def request_stop(signum, _frame):
        logger.warning("received {}: finishing the ticker in flight, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    cycle = 0
    while not stop.is_set():
        cycle += 1
        started = time.monotonic()
        counts = run_cycle(graph, settings.tickers, stop)
        took = time.monotonic() - started
        logger.info("heartbeat: cycle {} done in {:.1f}s: {} BUY, {} HOLD, {} failed ({} tickers, provider {}, data {})",
                    cycle, took, counts["BUY"], counts["HOLD"], counts["failed"], len(settings.tickers),
                    deps.provider.name, deps.market.name)
        if args.cycles and cycle >= args.cycles:
            break
        wait = max(settings.analysis_interval_s - took, 0.0)
        if took > settings.analysis_interval_s:
            COUNTERS.inc("cycle_overruns_total")
            logger.warning("cycle {} took {:.0f}s, longer than the {}s interval", cycle, took,
                           settings.analysis_interval_s)
        stop.wait(wait)
    logger.info("stopped after {} cycle(s)", cycle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
