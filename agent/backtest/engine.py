"""Walk-forward backtests of the cascade, through the same graph and the same paper broker as the loop.

Bar by bar, for each B3 day t: the paper trader gets the bars of day t (orders from t-1 fill at t's
open, stops and targets are checked), then the graph decides with ``as_of=t`` (bars after t are
invisible) and a BUY becomes an order for t+1's open. Equity is marked at t's close.
``quant`` mode replaces the LLM layers by indicator rules; ``cascade`` mode uses the LLMs, with their
answers cached (agent/llm/cache.py) so a rerun makes no LLM call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pandas as pd
from loguru import logger

from agent.config import LAYER_NAMES, Settings
from agent.deps import CascadeDeps
from agent.errors import DataError
from agent.graph import build_graph
from agent.layers.spec import QUANT_PROVIDER
from agent.llm.providers import ProviderChoice
from agent.market.calendar import B3_TZ
from agent.ops.metrics import COUNTERS
from agent.prompts import PromptLibrary
from agent.scheduler import LayerMajorScheduler, decide_ticker_major
from agent.store.db import Database
from agent.store.jsonl import DecisionSink
from agent.trading.broker import Bar
from agent.trading.kill_switch import TradingState
from agent.trading.trader import PaperTrader


@dataclass
class WalkResult:
    """What one walk-forward run produced, before metrics."""

    mode: str
    equity: pd.Series
    open_positions: pd.Series
    trades: list[dict[str, Any]]
    closes: dict[str, pd.Series]
    funnel: dict[str, dict[str, int]]
    decisions: int
    buys: int
    llm_layer_calls: int  # layer verdicts that came from an LLM (cache hits included)
    llm_calls_made: int  # calls that reached a model (cache misses)
    cache_hits: int
    halted: str | None
    seconds: float
    llm_errors: int = 0  # layer calls that failed (timeouts, invalid answers): HOLDs a rerun may not repeat
    bars: int = 0


def quant_deps(settings: Settings, market, sink: DecisionSink | None) -> CascadeDeps:
    """Deps for ``quant`` mode: no LLM at all (a model factory that is never called)."""

    def no_model(layer: str, schema: dict):
        raise AssertionError(f"quant mode asked for an LLM ({layer})")

    return CascadeDeps(settings=settings, market=market,
                       provider=ProviderChoice(QUANT_PROVIDER, "deterministic indicator rules",
                                               {layer: f"rules:{layer}" for layer in LAYER_NAMES}),
                       model_factory=no_model, prompts=PromptLibrary(), sink=sink)


def run_name(deps: CascadeDeps) -> str:
    return QUANT_PROVIDER if deps.provider.name == QUANT_PROVIDER else "cascade"


def trading_days(start: date, end: date) -> list[date]:
    """B3 sessions in the window: the exchange calendar where it reaches (2019-11 onwards), weekdays before
    (a weekday with no bar is skipped later). Never taken from the bars themselves: which bars survive
    validation may depend on later bars."""
    from agent.market.calendar import default_calendar

    cal = default_calendar()
    weekdays = [d.date() for d in pd.bdate_range(start, end)]
    return sorted({d for d in weekdays if not cal.first <= d <= cal.last} | set(cal.sessions(start, end)))


def walk_forward(deps: CascadeDeps, tickers: list[str], start: date, end: date, work_dir: Path) -> WalkResult:
    """Run the graph day by day over [start, end] and trade its decisions with the paper broker.

    Day t sees only bars up to t: the broker's bars and the graph's both come from the provider
    cut at t (``end=t``), exactly as a live decision on day t would.
    """
    s = deps.settings
    mode = run_name(deps)
    started = time.monotonic()
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "trades.jsonl"):
        (work_dir / name).unlink(missing_ok=True)  # a backtest starts from an empty ledger
    days = trading_days(start, end)
    if not days:
        raise DataError(f"no B3 sessions between {start} and {end}")

    now = [datetime.combine(days[0], dtime(18, 30), B3_TZ)]
    deps.clock = lambda: now[0]
    # the live trader's rules (fill guard, size cap on adds, lots) over a throwaway ledger: no fsync per commit
    trader = PaperTrader.from_settings(s, store=Database(work_dir / "ledger.db", scratch=True),
                                       trades_log=work_dir / "trades.jsonl", clock=deps.clock)
    broker = trader.broker
    deps.guard, deps.origin = trader.guard, "backtest"
    graph = build_graph(deps)

    funnel = {layer: {"pass": 0, "discard": 0} for layer in LAYER_NAMES}
    calls_before = COUNTERS.get("llm_calls_total")
    hits_before = deps.llm_cache.hits if deps.llm_cache else 0
    equity, open_positions, last_close = {}, {}, {}
    closes: dict[str, dict[pd.Timestamp, float]] = {t: {} for t in tickers}
    last_bar: dict[str, pd.Timestamp] = {}
    halted = None
    tally = {"decisions": 0, "buys": 0, "llm_layers": 0, "llm_errors": 0}

    def act(record: dict[str, Any]) -> None:
        tally["decisions"] += 1
        tally["buys"] += record["decision"] == "BUY"
        for layer in record["layers"]:
            funnel[layer["layer"]]["pass" if layer["passed"] else "discard"] += 1
            tally["llm_layers"] += layer["provider"] not in ("code", QUANT_PROVIDER)
            tally["llm_errors"] += bool(layer.get("error"))
        trader.on_decision(record)

    layer_major = mode != QUANT_PROVIDER and s.loop.scheduling == "layer_major"
    scheduler = LayerMajorScheduler(deps, on_record=act) if layer_major else None
    for day in days:
        now[0] = datetime.combine(day, dtime(18, 30), B3_TZ)
        stamp = pd.Timestamp(day)
        today: list[str] = []
        for ticker in tickers:
            try:  # the same cut the graph makes for this day (and the same cache entry)
                frame = deps.market.get_bars(ticker, "1d", end=day, lookback=s.market.lookback_bars).frame
            except DataError:
                continue
            if frame.index[-1] != stamp:
                continue  # no bar for this ticker today
            new = frame.index.searchsorted(last_bar[ticker], side="right") if ticker in last_bar else -1
            trader.on_bars(ticker, frame.iloc[new:])  # the bars since the last one fed (validated bars are sorted)
            last_bar[ticker] = stamp
            last_close[ticker] = closes[ticker][stamp] = float(frame["close"].iloc[-1])
            today.append(ticker)
        if today and trader.switch.state != TradingState.HALTED:
            outcomes = (scheduler.run(today, day.isoformat()) if scheduler
                        else decide_ticker_major(graph, today, day.isoformat(), act))
            failed = {t: e for t, e in outcomes.items() if isinstance(e, Exception)}
            if failed:
                raise next(iter(failed.values()))  # a backtest must not silently skip a decision
        if not last_close:
            continue  # no bar yet for any ticker
        status = trader.mark(last_close, day)
        if status["state"] == TradingState.HALTED.value and halted is None:
            halted = f"{day}: {status['state_reason']}"
            logger.warning("backtest halted by the kill switch on {}: {}", day, status["state_reason"])
        equity[stamp], open_positions[stamp] = status["equity"], status["open_positions"]
    if not equity:
        raise DataError(f"no bars between {start} and {end} for {', '.join(tickers)}")

    last_day = max(equity)
    for ticker, pos in broker.positions().items():  # close what is open at the last close: every trade counts
        price = last_close[ticker]
        broker.close_at(ticker, Bar(last_bar[ticker].date().isoformat(), price, price, price, price),
                        deps.clock().isoformat(), "end")
    equity[last_day] = broker.equity({})
    return WalkResult(
        mode=mode, equity=pd.Series(equity).sort_index(), open_positions=pd.Series(open_positions).sort_index(),
        trades=broker.trades(), funnel=funnel, decisions=tally["decisions"], buys=tally["buys"],
        llm_layer_calls=tally["llm_layers"], llm_errors=tally["llm_errors"],
        llm_calls_made=COUNTERS.get("llm_calls_total") - calls_before,
        cache_hits=(deps.llm_cache.hits - hits_before) if deps.llm_cache else 0,
        closes={t: pd.Series(c, dtype=float).sort_index() for t, c in closes.items()},
        halted=halted, seconds=time.monotonic() - started, bars=sum(len(c) for c in closes.values()),
    )
