"""Walk-forward backtests of the cascade, through the same graph and the same paper broker as the loop.

    python -m agent.backtest --tickers PETR4,VALE3 --start 2021-01-01 --end 2025-12-31 \\
        --source csv --data-dir ../shared/data/b3/daily --mode quant --json

Bar by bar, for each B3 day t: the paper trader gets the bars of day t (orders from t-1 fill at t's
open, stops and targets are checked), then the graph decides with ``as_of=t`` (bars after t are
invisible) and a BUY becomes an order for t+1's open. Equity is marked at t's close.
``quant`` mode replaces the LLM layers by indicator rules (agent/quant_rules.py); ``cascade`` mode
uses the LLMs, with their answers cached (agent/llm_cache.py) so a rerun makes no LLM call.
Every report carries the baselines: buy-and-hold of each ticker, of the Ibovespa, and quant mode.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pandas as pd
from loguru import logger

from agent.trading.broker import Bar
from agent.cli import add_run_flags, exit_code, start
from agent.config import LAYER_NAMES, TICKER_RE, Settings, comma_list, load_settings, normalize_ticker
from agent.store.db import Database
from agent.deps import CascadeDeps
from agent.errors import ConfigError, DataError, ProviderError
from agent.graph import build_graph
from agent.scheduler import LayerMajorScheduler, decide_ticker_major
from agent.trading.kill_switch import TradingState
from agent.llm.cache import LLMCache
from agent.ops.logs import setup_logging
from agent.ops.metrics import COUNTERS
from agent.prompts import PromptLibrary
from agent.llm.providers import ProviderChoice
from agent.layers.quant import QUANT_PROVIDER
from agent.store.jsonl import B3_TZ, DecisionSink
from agent.market.sources import make_market_provider
from agent.trading.trader import PaperTrader

IBOV = "^BVSP"
ALL_BARS = 1_000_000  # lookback that means "the whole file"


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


def buy_and_hold(close: pd.Series, capital: float) -> pd.Series:
    """Capital invested at the first close of the window and held (no costs): the simplest baseline."""
    close = close.astype(float)
    return capital * close / float(close.iloc[0])


def training_overlap(deps: CascadeDeps, start: date) -> list[str]:
    """Warnings for each LLM whose release date is after the window's start (it may remember the prices)."""
    if deps.provider.name == QUANT_PROVIDER:
        return []
    releases = deps.settings.backtest.model_releases
    warnings = []
    for layer, model in sorted(set(deps.provider.models.items()), key=lambda kv: LAYER_NAMES.index(kv[0])):
        name = model.lower()
        matches = [prefix for prefix in releases if name.startswith(prefix)]
        released = releases[max(matches, key=len)] if matches else None
        if released is None:
            warnings.append(f"{layer}: the release date of {model} is unknown (backtest.model_releases): assume its "
                            "training data overlaps the window (look-ahead through the model's memory)")
        elif start < released:
            warnings.append(f"{layer}: the window starts {start}, before {model} was released ({released}): "
                            "it may remember these prices (look-ahead through the model's memory)")
    return warnings


def risk_free(settings: Settings) -> float | pd.Series:
    """The CDI/Selic series from backtest.risk_free_file (date, annual rate), else risk.risk_free_rate."""
    path = settings.backtest.risk_free_file
    if path is None:
        return settings.risk.risk_free_rate
    try:
        raw = pd.read_csv(path)
        series = pd.Series(pd.to_numeric(raw.iloc[:, 1], errors="raise").values,
                           index=pd.DatetimeIndex(pd.to_datetime(raw.iloc[:, 0], errors="raise")))
    except (OSError, ValueError, IndexError) as exc:
        raise ConfigError(f"backtest.risk_free_file {path}: expected a CSV of date,annual_rate: {exc}") from exc
    if series.empty or (series.abs() > 1).any():
        raise ConfigError(f"backtest.risk_free_file {path}: rates must be annual fractions (0.1075 for 10.75%)")
    return series.sort_index()


def _ibovespa(market, start: date, end: date) -> tuple[pd.Series | None, str | None]:
    try:
        frame = market.get_bars(IBOV, "1d", end=end, lookback=ALL_BARS).frame
    except (DataError, ValueError, OSError) as exc:
        return None, f"Ibovespa baseline unavailable from source {getattr(market, 'name', '?')}: {exc}"
    close = frame.loc[(frame.index >= pd.Timestamp(start)), "close"]
    return (close, None) if len(close) else (None, f"no Ibovespa bars between {start} and {end}")


def run_backtest(settings: Settings, deps: CascadeDeps, tickers: list[str], start: date, end: date,
                 work_dir: Path, *, quant_baseline: bool = True) -> dict[str, Any]:
    """The strategy's walk-forward run, its baselines, and their metrics (the report's JSON)."""
    from tools.performance import summarize

    warnings = training_overlap(deps, start)
    if deps.news is not None and deps.news.name == "rss":
        # a feed carries today's headlines only: none is dated inside a past window, and fetching it for
        # every replayed day would hit the network once per day for nothing
        deps.news = None
        warnings.append("news: RSS feeds carry only current headlines, so this backtest ran without news; "
                        "NEWS_PROVIDER=file with a dated archive (NEWS_FILE) replays headlines as of each day")
    run = walk_forward(deps, tickers, start, end, work_dir / run_name(deps))
    rf, min_years = risk_free(settings), settings.backtest.min_years_to_annualise
    capital = settings.risk.capital

    def metrics_of(equity: pd.Series, trades: list[dict], open_positions: pd.Series | None) -> dict[str, Any]:
        return summarize(equity, trades, open_positions, risk_free=rf, min_years=min_years)

    curves = {f"buy_and_hold:{t}": buy_and_hold(c, capital) for t, c in run.closes.items() if len(c)}
    ibov, note = _ibovespa(deps.market, start, end)
    if ibov is not None:
        curves["buy_and_hold:IBOV"] = buy_and_hold(ibov, capital)
    else:
        warnings.append(note)
    baselines = {name: metrics_of(curve, [], None) for name, curve in curves.items()}
    if quant_baseline and run.mode != QUANT_PROVIDER:
        quant = walk_forward(quant_deps(settings, deps.market, None), tickers, start, end, work_dir / "quant")
        curves["quant"] = quant.equity
        baselines["quant"] = {**metrics_of(quant.equity, quant.trades, quant.open_positions),
                              "decisions": quant.decisions, "buys": quant.buys}
    if run.halted:
        warnings.append(f"the kill switch halted trading on {run.halted}; later days made no new trades")
    first, last = run.equity.index[0].date(), run.equity.index[-1].date()
    if first > trading_days(start, end)[0]:
        warnings.append(f"the first day traded is {first}, after the window's first session (no bars before it)")
    for ticker, close in run.closes.items():
        if close.empty:
            warnings.append(f"{ticker}: no bars in the window from source {getattr(deps.market, 'name', '?')}")
    for name, curve in curves.items():
        if len(curve) and (curve.index[0].date() > first or curve.index[-1].date() < last):
            warnings.append(f"{name} covers {curve.index[0].date()} to {curve.index[-1].date()}, not the whole "
                            f"window {first} to {last}: compare it with care")
    if run.llm_errors:
        warnings.append(f"{run.llm_errors} LLM layer call(s) failed (timeouts or invalid answers) and became "
                        "discards; failed calls are not cached, so a rerun may decide differently")

    metrics = metrics_of(run.equity, run.trades, run.open_positions)
    metrics.update({
        "decisions": run.decisions, "buys": run.buys,
        "llm_calls_per_decision": round(run.llm_layer_calls / run.decisions, 4) if run.decisions else None,
        "llm_calls_made": run.llm_calls_made,
        "cache_hits": run.cache_hits,
        "cache_hit_rate": (round(run.cache_hits / run.llm_layer_calls, 4) if run.llm_layer_calls else None),
        "llm_errors": run.llm_errors,
        "seconds": round(run.seconds, 2), "ticker_bars": run.bars,
        "bars_per_second": round(run.bars / run.seconds, 1) if run.seconds else None,
    })
    b = settings.broker
    meta = {"mode": run.mode, "tickers": tickers, "start": start.isoformat(), "end": end.isoformat(),
            "provider": deps.provider.name, "models": dict(deps.provider.models),
            "data_source": getattr(deps.market, "name", "?"), "capital": capital,
            "costs": {"slippage_bps": b.slippage_bps, "fee_bps": b.fee_bps, "commission": b.commission},
            "risk_free": rf if isinstance(rf, float) else str(settings.backtest.risk_free_file),
            "config_version": settings.fingerprint(),
            "created_at": datetime.now(B3_TZ).isoformat(timespec="seconds")}
    return {"meta": meta, "warnings": warnings, "metrics": metrics, "baselines": baselines, "funnel": run.funnel,
            "_curves": curves, "_run": run}


def run_name(deps: CascadeDeps) -> str:
    return QUANT_PROVIDER if deps.provider.name == QUANT_PROVIDER else "cascade"


# ------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.backtest", description=__doc__.splitlines()[0])
    p.add_argument("--tickers", required=True, help="comma-separated B3 tickers, e.g. PETR4,VALE3")
    p.add_argument("--start", required=True, help="first day traded (YYYY-MM-DD); earlier bars only warm up")
    p.add_argument("--end", required=True, help="last day traded (YYYY-MM-DD)")
    p.add_argument("--mode", choices=["quant", "cascade"], default="quant",
                   help="quant: indicator rules (no LLM); cascade: the LLM layers, answers cached")
    add_run_flags(p)
    p.add_argument("--json", action="store_true", help="print the metrics JSON on stdout")
    p.add_argument("--report", type=Path, help="write report.html, PNG charts and metrics.json into this folder")
    p.add_argument("--no-quant-baseline", action="store_true", help="cascade mode: skip the quant baseline run")
    return p


def _dates(args: argparse.Namespace) -> tuple[date, date]:
    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as exc:
        raise ConfigError(f"--start/--end: {exc} (expected YYYY-MM-DD)") from None
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}")
    return start, end


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        tickers = [normalize_ticker(t) for t in comma_list(args.tickers)]
        bad = [t for t in tickers if not TICKER_RE.match(t)]
        if not tickers or bad:
            raise ConfigError(f"--tickers: {bad or args.tickers!r} is not a list of B3 tickers (e.g. PETR4,VALE3)")
        start, end = _dates(args)
        overrides = {("logging", "level"): "WARNING"}
        if args.mode == "quant":
            settings = load_settings(args.config, overrides={
                ("market", "source"): args.source, ("market", "data_dir"): args.data_dir, **overrides})
            setup_logging(settings, to_file=False)
            deps = quant_deps(settings, make_market_provider(settings), None)
        else:
            deps = start_backtest(args, overrides)
            settings = deps.settings
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)

    work = args.report or Path(tempfile.mkdtemp(prefix="b3-backtest-"))
    try:
        if deps.sink is None and args.report:
            shutil.rmtree(work / "decisions", ignore_errors=True)  # a rerun into the same folder starts clean
            deps.sink = DecisionSink(work / "decisions")
        result = run_backtest(settings, deps, tickers, start, end, work, quant_baseline=not args.no_quant_baseline)
    except (DataError, ConfigError) as exc:
        return exit_code(ConfigError(str(exc)))
    finally:
        if deps.llm_cache is not None:
            deps.llm_cache.close()
    curves, run = result.pop("_curves"), result.pop("_run")
    if args.report:
        from agent.backtest.report import write_report

        files = write_report(args.report, title=f"Backtest {run.mode}: {', '.join(tickers)} {start} to {end}",
                             metrics=result["metrics"], baselines=result["baselines"], equity=run.equity,
                             baseline_equity=curves, trades=run.trades, prices=run.closes, funnel=result["funnel"],
                             warnings=result["warnings"], meta=result["meta"])
        result["report"] = {name: str(path) for name, path in files.items()}
    else:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        print_summary(result)
    return 0


def start_backtest(args: argparse.Namespace, overrides: dict) -> CascadeDeps:
    """Cascade mode: the shared start-up path (LLM provider, banner), no live sink, and the LLM cache."""
    deps = start(args, overrides, sink=False, log_files=False)
    deps.llm_cache = LLMCache(deps.settings.llm_cache_store)
    return deps


def print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for warning in result["warnings"]:
        console.print(f"[bold yellow]warning:[/] {warning}")
    table = Table(title=f"{result['meta']['mode']} backtest {result['meta']['start']} to {result['meta']['end']}")
    runs = [("strategy", result["metrics"]), *result["baselines"].items()]
    table.add_column("metric")
    for name, _ in runs:
        table.add_column(name.replace("buy_and_hold:", "B&H "), justify="right")
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration_bars",
                "trades", "win_rate", "profit_factor", "avg_trade", "exposure"):
        table.add_row(key, *[fmt(m.get(key)) for _, m in runs])
    console.print(table)
    m = result["metrics"]
    console.print(f"{m['decisions']} decisions, {m['buys']} BUY, LLM calls per decision {m['llm_calls_per_decision']}, "
                  f"cache hit rate {m['cache_hit_rate']}, {m['bars_per_second']} bars/s")
    if result.get("report"):
        console.print(f"report: {result['report'].get('report.html', result['report'])}")


if __name__ == "__main__":
    sys.exit(main())
