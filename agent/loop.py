"""The continuous loop behind ``make run``: every ANALYSIS_INTERVAL, every ticker through the cascade,
and the paper broker in step with the market.

Each cycle, per ticker: feed the latest daily bars to the paper trader (fills of earlier BUYs at
the next open, stops and targets), run the cascade unless the kill switch is HALTED, and queue a
BUY as an order. After the tickers: mark the portfolio (the kill-switch limits), heartbeat, metrics.

Safe to leave running:
- a failing ticker never stops the loop; one failing the same way again is skipped for a growing
  number of cycles (capped by loop.failure_backoff_max_s);
- live sources wait for B3 sessions (the calendar), sleeping until the next open, never spinning;
- SIGINT/SIGTERM finish the work in flight (layer-major: the LLM calls running; ticker-major: the ticker),
  start nothing more, abandon the rest of the cycle and exit 0; a second signal exits at once (130);
- a watchdog alerts when no cycle has completed for loop.stall_after_intervals intervals (or slowest
  cycles, whichever is longer; never sooner than loop.min_stall_s).

Control a running (or stopped) agent from another shell; the state is kept in DATABASE_PATH:
``python -m agent.loop --halt "reason"``, ``--no-new-buys``, ``--resume``, ``--status``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from loguru import logger

from agent.cli import add_run_flags, exit_code, start
from agent.config import LAYER_NAMES
from agent.control import add_control_flags, control, wants_control
from agent.dashboard.server import serve_in_thread
from agent.deps import CascadeDeps
from agent.errors import ConfigError, ProviderError, describe_exception
from agent.graph import build_graph
from agent.llm.cache import LLMCache
from agent.market.calendar import B3_TZ, b3_timestamp, default_calendar
from agent.market.validation import without_future_bars
from agent.ops.alerts import (
    AlertQueue,
    build_alerts,
    dashboard_link,
    decision_alert,
    halt_alert,
    stall_alert,
)
from agent.ops.logs import perf_log
from agent.ops.metrics import COUNTERS
from agent.ops.metrics_server import serve_metrics
from agent.ops.watchdog import Watchdog
from agent.scheduler import LayerMajorScheduler, decide_ticker_major
from agent.store.checks import ledger_errors
from agent.trading.backoff import Backoff, failure_kind
from agent.trading.heartbeat import LoopHealth
from agent.trading.kill_switch import TradingState
from agent.trading.trader import PaperTrader


@dataclass
class CycleReport:
    number: int
    took_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"BUY": 0, "HOLD": 0, "failed": 0, "skipped": 0})
    trades: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    portfolio: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    error: str | None = None  # why the whole cycle failed (its tickers' failures are in ``counts``)


def gates_on_market_hours(deps: CascadeDeps) -> bool:
    """``auto``: live sources wait for B3 sessions; sim and csv (offline data) run any time."""
    mode = deps.settings.loop.market_hours
    return mode == "always" or (mode == "auto" and deps.settings.market.source not in ("sim", "csv"))


class TradingLoop:
    def __init__(self, deps: CascadeDeps, trader: PaperTrader, *, alerts: AlertQueue | None = None,
                 stop: threading.Event | None = None, wait: Callable[[float], bool] | None = None):
        self.deps, self.trader, self.alerts = deps, trader, alerts
        self.settings = deps.settings
        self.stop = stop or threading.Event()
        self.stop_reason: str | None = None  # the signal that set ``stop``, logged by the loop
        self.wait = wait or self.stop.wait  # returns True when stopped while waiting
        deps.guard, deps.origin = trader.guard, "loop"
        self.graph = build_graph(deps)
        self.scheduler = (LayerMajorScheduler(deps, stop=self.stop)
                          if self.settings.loop.scheduling == "layer_major" else None)
        self.health = LoopHealth(trader.broker.db)
        self.backoff = Backoff(self.settings.loop.failure_backoff_max_s // self.settings.analysis_interval_s)
        self.cycle = 0
        self._last_state = trader.switch.state
        self._pruned_on = None
        self._last_bar: dict[str, Any] = {}  # ticker -> date of the last real bar seen (staleness)
        for layer in LAYER_NAMES:  # the funnel is visible from the first scrape, zeros included
            for outcome in ("pass", "discard"):
                COUNTERS.inc("layer_results_total", 0, layer=layer, outcome=outcome)
        for decision in ("BUY", "HOLD"):
            COUNTERS.inc("decisions_total", 0, decision=decision)

    def _today(self):
        return self.deps.clock().astimezone(B3_TZ).date()

    # ------------------------------------------------------------------ one cycle

    def run_cycle(self) -> CycleReport:
        self.cycle += 1
        report = CycleReport(self.cycle)
        started = time.monotonic()
        self.deps.model_switches.start_cycle()
        self._notice_state_change()
        self._prune_logs()
        closes: dict[str, float] = {}
        configured = list(self.settings.tickers)
        self._manage_unconfigured(configured, report, closes)
        to_decide = [t for t in configured
                     if self._prepare_ticker(t, report, closes) and not self._backing_off(t, report)]
        if to_decide and not self.stop.is_set():
            results = self._decide(to_decide, lambda record: self._act(record, report))
            for ticker in to_decide:
                outcome = results.get(ticker)
                if isinstance(outcome, Exception):
                    report.counts["failed"] += 1
                    COUNTERS.inc("ticker_failures_total", ticker=ticker, kind=type(outcome).__name__)
                    logger.error("{}: cascade failed: {}", ticker, describe_exception(outcome))
                    self.backoff.record(ticker, type(outcome).__name__)
                elif outcome is not None:
                    report.counts[outcome["decision"]] += 1
                    self.backoff.record(ticker, failure_kind(outcome))
        if self.stop.is_set():
            report.interrupted = True
            logger.warning("cycle {} abandoned: stopping", self.cycle)
        report.portfolio = self.trader.mark(closes, self._today())
        self._last_state = TradingState(report.portfolio["state"])  # a halt by the limits is alerted once
        for ticker, day in self._last_bar.items():
            COUNTERS.set_gauge("last_bar_age_days", (self._today() - day).days, ticker=ticker)
        report.took_s = time.monotonic() - started
        COUNTERS.inc("cycles_total")
        COUNTERS.observe("cycle_duration_seconds", report.took_s)
        COUNTERS.set_gauge("last_cycle_success_timestamp_seconds", time.time())
        COUNTERS.set_gauge("model_switches_last_cycle", self.deps.model_switches.cycle)
        self._heartbeat(report)
        return report

    def _decide(self, tickers: list[str], on_record) -> dict[str, Any]:
        if self.scheduler is not None:
            self.scheduler.on_record = on_record
            return self.scheduler.run(tickers)
        return decide_ticker_major(self.graph, tickers, None, on_record, self.stop)

    def _act(self, record: dict[str, Any], report: CycleReport) -> None:
        """A decision just made: a BUY becomes an order before the next ticker is decided. A failure here
        (the ledger locked or gone) leaves that BUY unqueued and never stops the other tickers."""
        try:
            order = self.trader.on_decision(record)
        except Exception as exc:  # noqa: BLE001 - a restart queues a recorded BUY the ledger never saw
            COUNTERS.inc("ticker_failures_total", ticker=record["ticker"], kind=type(exc).__name__)
            logger.error("{}: BUY {} not queued: {}", record["ticker"], record["decision_id"], describe_exception(exc))
            return
        if order:
            report.orders.append(order)
            if self.alerts is not None:
                self.alerts.notify(decision_alert(record, dashboard_link(self.settings, record["decision_id"])))

    def _backing_off(self, ticker: str, report: CycleReport) -> bool:
        skip = self.backoff.should_skip(ticker)
        if skip:
            report.counts["skipped"] += 1
            COUNTERS.inc("ticker_backoffs_total", ticker=ticker)
            logger.warning("{}: cascade skipped this cycle: {}", ticker, skip)
        return bool(skip)

    def _prepare_ticker(self, ticker: str, report: CycleReport, closes: dict[str, float]) -> bool:
        """Fills and exits on the latest real bars; True when the ticker may go through the cascade."""
        s = self.settings
        try:
            bars = self.deps.market.get_bars(ticker, s.market.timeframes.primary, lookback=s.market.lookback_bars)
            bars = without_future_bars(self.deps.market, bars, self.deps.clock(), s.market.lookback_bars)
        except Exception as exc:  # noqa: BLE001 - the cascade records the data failure; keep going
            COUNTERS.inc("tool_errors_total", stage="execution_bars", kind=type(exc).__name__)
            logger.warning("{}: no bars for fills and exits this cycle: {}", ticker, exc)
            return self.trader.switch.state != TradingState.HALTED
        if bars.source == "sim" and s.market.source != "sim":
            # a live source failed and the chain fell back to simulated bars: never trade on them
            COUNTERS.inc("tool_errors_total", stage="execution_bars", kind="simulated_fallback")
            logger.warning("{}: only simulated fallback bars this cycle: no fills, exits or decision", ticker)
            return False
        closes[ticker] = float(bars.frame["close"].iloc[-1])
        self._last_bar[ticker] = bars.frame.index[-1].date()
        try:
            report.trades += self.trader.on_bars(ticker, bars.frame)
        except Exception as exc:  # noqa: BLE001 - e.g. a locked ledger: this ticker waits, the others go on
            report.counts["failed"] += 1
            COUNTERS.inc("ticker_failures_total", ticker=ticker, kind=type(exc).__name__)
            logger.error("{}: fills and exits failed this cycle, so no decision either: {}", ticker, describe_exception(exc))
            return False
        return self.trader.switch.state != TradingState.HALTED

    def _manage_unconfigured(self, configured: list[str], report: CycleReport, closes: dict[str, float]) -> None:
        """Positions and orders in tickers no longer in B3_TICKERS: cancel the orders, keep managing the stops."""
        ts = b3_timestamp(self.deps.clock())
        for order in self.trader.broker.orders("pending"):
            if order["ticker"] not in configured:
                self.trader.broker.cancel_pending(f"{order['ticker']} is no longer in B3_TICKERS", ts, order["ticker"])
        for ticker in self.trader.broker.positions():
            if ticker not in configured:
                self._prepare_ticker(ticker, report, closes)

    def _notice_state_change(self) -> None:
        """A halt or resume set from another shell: log it, and alert on a halt."""
        status = self.trader.switch.status()
        state = TradingState(status["state"])
        if state != self._last_state:
            logger.warning("kill switch is now {} ({}, by {})", state.value, status["reason"], status["changed_by"])
            if state == TradingState.HALTED and self.alerts:
                self.alerts.notify(halt_alert(status["reason"]))
            self._last_state = state

    def _prune_logs(self) -> None:
        today = self._today()
        if self.deps.sink is not None and self._pruned_on != today:
            self.deps.sink.prune(self.settings.logging.retention_days, today)
            self._pruned_on = today

    def _record_health(self, r: CycleReport, sleeping_for: float | None = None) -> None:
        """The cycle (or a sleep until B3 opens) in the database, for the dashboard; a failure here is
        logged, never fatal."""
        now = self.deps.clock().astimezone(B3_TZ)
        wake = (now + timedelta(seconds=sleeping_for)).isoformat(timespec="seconds") if sleeping_for else None
        try:
            self.health.record(
                ts=now.isoformat(timespec="seconds"), cycle=r.number,
                took_s=r.took_s, counts=r.counts, interrupted=r.interrupted, error=r.error,
                interval_s=self.settings.analysis_interval_s, provider=self.deps.provider.name,
                data_source=self.deps.market.name, last_bars={t: d.isoformat() for t, d in self._last_bar.items()},
                sleeping_until=wake)
        except Exception as exc:  # noqa: BLE001 - e.g. a locked database: the loop goes on
            COUNTERS.inc("cycle_errors_total", kind=f"heartbeat_{type(exc).__name__}")
            logger.error("heartbeat not recorded: {}", describe_exception(exc))

    def _heartbeat(self, r: CycleReport) -> None:
        self._record_health(r)
        p = r.portfolio
        logger.info("heartbeat: cycle {} in {:.1f}s: {} BUY, {} HOLD, {} failed, {} skipped | {} | equity {:,.2f} "
                    "cash {:,.2f}, {} open, {} pending, drawdown {:.1%} | provider {}, data {}",
                    r.number, r.took_s, r.counts["BUY"], r.counts["HOLD"], r.counts["failed"], r.counts["skipped"],
                    p["state"], p["equity"], p["cash"], p["open_positions"], p["pending_orders"], p["drawdown"],
                    self.deps.provider.name, self.deps.market.name)
        perf_log().info("cycle n={} tickers={} duration_s={:.3f} buy={} hold={} failed={} skipped={} interrupted={} "
                        "scheduling={} model_switches={}", r.number, len(self.settings.tickers), r.took_s,
                        r.counts["BUY"], r.counts["HOLD"], r.counts["failed"], r.counts["skipped"], r.interrupted,
                        self.settings.loop.scheduling, self.deps.model_switches.cycle)

    # ------------------------------------------------------------------ the loop

    def _seconds_until_open(self) -> float:
        """0 when B3 is in session (or gating is off); else seconds until the next open."""
        if not gates_on_market_hours(self.deps):
            return 0.0
        now = self.deps.clock()
        try:
            cal = default_calendar()
            return 0.0 if cal.is_open(now) else max((cal.next_open(now) - now).total_seconds(), 1.0)
        except ValueError as exc:  # a date beyond the calendar's range: do not block trading on it
            logger.warning("B3 calendar cannot gate {}: {}", now, exc)
            return 0.0

    def run(self, cycles: int = 0, watchdog: Watchdog | None = None) -> int:
        """Cycles until stopped (or ``cycles`` done). Returns the number of cycles run."""
        interval = self.settings.analysis_interval_s
        slowest = 0.0

        def stall_after() -> float:
            loop = self.settings.loop
            return max(loop.stall_after_intervals * max(interval, slowest), loop.min_stall_s)

        while not self.stop.is_set():
            closed_for = self._seconds_until_open()
            if closed_for:
                logger.info("B3 is closed: sleeping {:.0f} min until the next session opens", closed_for / 60)
                self._record_health(CycleReport(self.cycle), sleeping_for=closed_for)
                if watchdog:
                    watchdog.expect_within(closed_for + stall_after())
                if self.wait(closed_for):
                    break
                continue
            if watchdog:
                watchdog.expect_within(stall_after())  # a first cycle that hangs is a stall too
            try:
                report = self.run_cycle()
            except Exception as exc:  # noqa: BLE001 - e.g. a locked database or a full disk: retry next cycle
                COUNTERS.inc("cycle_errors_total", kind=type(exc).__name__)
                logger.error("cycle {} failed: {}", self.cycle, describe_exception(exc))
                report = CycleReport(self.cycle, took_s=0.0, error=f"{type(exc).__name__}: {exc}")
                self._record_health(report)
            if cycles and self.cycle >= cycles:
                break
            if report.took_s > interval:
                COUNTERS.inc("cycle_overruns_total")
                logger.warning("cycle {} took {:.0f}s, longer than the {}s interval", report.number, report.took_s,
                               interval)
            slowest = max(slowest, report.took_s)
            pause = max(interval - report.took_s, 0.0)
            if watchdog:
                watchdog.expect_within(pause + stall_after())
            if self.wait(pause):
                break
        if self.stop_reason:
            logger.warning("received {}: stopped before the next ticker", self.stop_reason)
        logger.info("stopped after {} cycle(s)", self.cycle)
        return self.cycle


# ------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.loop", description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--cycles", type=int, default=0, help="stop after N cycles (0 = run until stopped)")
    p.add_argument("--interval", type=int, help="seconds between cycles (env ANALYSIS_INTERVAL)")
    add_run_flags(p)
    add_control_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.cycles < 0:
        p.error("--cycles must be >= 0")
    if wants_control(args):
        return control(args)

    try:
        deps = start(args, {("analysis_interval_s",): args.interval})
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)
    settings = deps.settings
    try:
        with ledger_errors(settings.ledger_path):
            trader = PaperTrader.from_settings(settings, clock=deps.clock)
        if settings.llm.temperature == 0:
            # with daily bars the loop asks again about an unchanged bar every cycle: the same question to the
            # same model gets its answer from the cache (records say ``cached``); any new input is asked afresh
            deps.llm_cache = LLMCache(settings.llm_cache_store)
    except ConfigError as exc:  # DATABASE_PATH, DATABASE_URL or LLM_CACHE_PATH unusable, or an older ledger
        return exit_code(exc)
    alerts = build_alerts(settings)
    trader.alerts = alerts
    if deps.sink is not None:
        trader.resubmit_unqueued(deps.sink)
    loop = TradingLoop(deps, trader, alerts=alerts)

    def request_stop(signum, _frame):  # no logging here: loguru is not re-entrant
        if loop.stop.is_set():
            raise KeyboardInterrupt  # a second signal: do not wait for the call in flight
        loop.stop_reason = signal.Signals(signum).name
        loop.stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    metrics = serve_metrics(settings.metrics.bind, settings.metrics.port) if settings.metrics.enabled else None
    dashboard = serve_in_thread(settings) if settings.dashboard.enabled else None
    def on_stall(idle: float) -> None:
        logger.error("loop stalled: no cycle completed for {:.0f}s", idle)
        alerts.notify(stall_alert(idle, settings.analysis_interval_s))

    watchdog = Watchdog(on_stall).start()
    try:
        loop.run(args.cycles, watchdog)
    except KeyboardInterrupt:
        logger.warning("interrupted again: exiting now (records and trades are flushed line by line)")
        alerts.close(timeout=1.0)
        os._exit(130)  # do not wait for an LLM call still running in a worker thread
    finally:
        watchdog.stop()
        alerts.close()
        if metrics:
            metrics.close()
        if dashboard:
            dashboard.close()
        if deps.llm_cache is not None:
            deps.llm_cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
