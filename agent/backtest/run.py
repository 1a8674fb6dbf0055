"""One backtest: the strategy's walk-forward run, its baselines, the warnings a reader needs, and the metrics.

Its result is the report's JSON (meta, warnings, metrics, baselines, funnel) plus the curves and the
raw run the charts are drawn from. Every report carries the baselines: buy-and-hold of each ticker,
of the Ibovespa, and quant mode.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from agent.backtest.baselines import buy_and_hold, ibovespa, risk_free
from agent.backtest.engine import quant_deps, run_name, trading_days, walk_forward
from agent.config import LAYER_NAMES, Settings
from agent.deps import CascadeDeps
from agent.layers.spec import QUANT_PROVIDER
from agent.market.calendar import B3_TZ


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
    ibov, note = ibovespa(deps.market, start, end)
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
