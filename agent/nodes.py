"""The plain-code nodes of the cascade: market data, indicators, risk, news, and the decision.

Each is a plain ``state -> partial update`` function taking its outside world from ``deps``. A tool
failure never raises out of a node: it sets ``error`` (counted), and the graph routes to ``decide``,
which records a HOLD with the reason.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from loguru import logger

from agent.config import normalize_ticker
from agent.deps import CascadeDeps
from agent.errors import AgentError, DataError
from agent.market.bars import OHLCV
from agent.market.calendar import B3_TZ, b3_timestamp
from agent.market.validation import is_index_ticker, without_future_bars
from agent.news.injection import sanitize_for_prompt, screen_headline
from agent.news.selection import (
    CLOCK_SKEW_TOLERANCE,
    format_headlines,
    select_headlines,
)
from agent.news.tickers import DEFAULT_ALIASES
from agent.ops.metrics import COUNTERS
from agent.record import DecisionRecord, Position, combined_prompt_version, decision_id
from agent.state import CascadeState
from tools.indicators import bar_label, bar_labels, latest_indicators, timeframe_summary
from tools.risk import RiskLimits, apply_size_factor, risk_snapshot

# ------------------------------------------------------------------ tool nodes

def _tool_failure(stage: str, exc: Exception) -> dict[str, Any]:
    COUNTERS.inc("tool_errors_total", stage=stage, kind=type(exc).__name__)
    logger.warning("{}: {}", stage, exc)
    return {"error": f"{stage}: {exc}", "discarded_at": stage}


def as_of_date(state: CascadeState) -> date | None:
    """The replay date, or None for a live decision."""
    return date.fromisoformat(state["as_of"][:10]) if state.get("as_of") else None


def decision_time(state: CascadeState, deps: CascadeDeps) -> datetime:
    """When the decision is made: the end of the replay day, or now for a live decision."""
    end = as_of_date(state)
    return datetime.combine(end, time(23, 59), B3_TZ) if end else deps.clock()


def load_market_data(state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    """Fetch validated bars up to ``as_of`` and keep them in the state as plain columns."""
    s = deps.settings
    ticker = normalize_ticker(state["ticker"])
    try:
        end = as_of_date(state)
        bars = deps.market.get_bars(ticker, s.market.timeframes.primary, end=end, lookback=s.market.lookback_bars)
        bars = without_future_bars(deps.market, bars, decision_time(state, deps), s.market.lookback_bars)
        if len(bars) < s.market.min_bars:
            raise DataError(f"only {len(bars)} valid bars for {bars.ticker}, need {s.market.min_bars}")
    except (AgentError, ValueError, KeyError, TypeError, OSError) as exc:
        return _tool_failure("market_data", exc)
    frame = bars.frame
    last = pd.Timestamp(frame.index[-1])
    now = decision_time(state, deps)
    timeframes = [timeframe_summary(frame, bars.timeframe).model_dump(mode="json")]
    for tf in (s.market.timeframes.secondary, s.market.timeframes.tertiary):
        timeframes.append(_secondary_timeframe(deps, ticker, tf, end, bars.source, last, now))
    today = now.astimezone(B3_TZ).date()
    return {
        "ticker": ticker,
        "market": {
            "source": bars.source,
            "timeframe": bars.timeframe,
            "bar_date": bar_label(last),
            "bar_age_days": (today - last.date()).days,
            **(session_checks(frame, now) if bars.timeframe == "1d" else {}),
            "n_bars": len(frame),
            "report": bars.report.model_dump(mode="json"),
            "timeframes": timeframes,
            "bars": {"date": bar_labels(frame.index),
                     **{c: frame[c].to_numpy(dtype=float).tolist() for c in OHLCV}},
        },
    }


def session_checks(frame: pd.DataFrame, now: datetime) -> dict[str, Any]:
    """Daily bars against the B3 calendar: sessions missing from the window, and sessions behind now."""
    from agent.market.calendar import default_calendar

    cal = default_calendar()
    first, last = frame.index[0].date(), frame.index[-1].date()
    try:
        expected = cal.last_complete_session(now)
        behind = len(cal.sessions(last + timedelta(days=1), expected))
        sessions = cal.sessions(max(first, cal.first), last)
    except ValueError:  # outside the calendar's range: the calendar-day rule applies
        return {}
    have = set(frame.index.date)
    missing = [d for d in sessions if d not in have]
    recent = set(sessions[-5:])
    return {"sessions_behind": behind, "expected_last_bar": expected.isoformat(), "missing_sessions": len(missing),
            "missing_recent": [d.isoformat() for d in missing if d in recent]}


def _secondary_timeframe(deps: CascadeDeps, ticker: str, timeframe: str, end: date | None, primary_source: str,
                         primary_last: pd.Timestamp, now: datetime) -> dict[str, Any]:
    """Summary of a confirmation timeframe from the primary's source, as recent as the primary.

    Anything else (another source, e.g. a simulated fallback, or older bars) is recorded as
    unavailable with the reason, never silently mixed in, and never fatal.
    """
    try:
        lookback = deps.settings.market.intraday_lookback_bars
        bars = without_future_bars(deps.market, deps.market.get_bars(ticker, timeframe, end=end, lookback=lookback),
                                   now, lookback)
        if bars.source != primary_source:
            raise DataError(f"only {bars.source} bars (the primary timeframe came from {primary_source})")
        if bars.frame.index[-1].date() < primary_last.date():
            raise DataError(f"stale: last {timeframe} bar {bar_label(bars.frame.index[-1])} is older than the "
                            f"primary bar {bar_label(primary_last)}")
        return {**timeframe_summary(bars.frame, timeframe).model_dump(mode="json"), "source": bars.source}
    except (AgentError, ValueError, KeyError, TypeError, OSError) as exc:
        COUNTERS.inc("timeframe_unavailable_total", timeframe=timeframe)
        reason = str(exc)
        for folder in {getattr(deps.market, "data_dir", None), deps.settings.market.data_dir} - {None}:
            reason = reason.replace(str(folder), "MARKET_DATA_DIR")  # the prompt (and its cache key) stay path-free
        return {"timeframe": timeframe, "unavailable": reason}


def load_news(state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    """Headlines for the ticker: screened for prompt injection, sanitised, recent, de-duplicated.

    Headlines given in the input (Studio, tests) go through the same screening. Never fatal.
    """
    n = deps.settings.news
    given = state.get("headlines") or []
    dropped: list[tuple[str, str]] = []
    if given:
        kept = []
        for text in given:
            reason = screen_headline(text)
            if reason:
                dropped.append((text, reason))
            else:
                kept.append(sanitize_for_prompt(text))
        info: dict[str, Any] = {"provider": "input", "selected": len(kept)}
    else:
        kept, info = [], {"provider": deps.news.name if deps.news else None}
        batch = None
        try:
            now = decision_time(state, deps)
            batch = deps.news_batch(now)
        except (AgentError, ValueError, OSError) as exc:
            COUNTERS.inc("news_errors_total", kind=type(exc).__name__)
            info["errors"] = [str(exc)]
        if batch is not None:
            # Replaying a past date: nothing published after it, not even within the live clock-skew tolerance.
            sel = select_headlines(batch.headlines, state["ticker"], {**DEFAULT_ALIASES, **n.aliases}, now,
                                   n.window_hours, n.max_items,
                                   clock_skew=timedelta(0) if state.get("as_of") else CLOCK_SKEW_TOLERANCE)
            kept = format_headlines(sel.headlines).splitlines()
            dropped = sel.dropped
            info.update(selected=len(kept), counts=sel.counts, notes=sel.notes, errors=batch.errors)
    if dropped:
        COUNTERS.inc("news_dropped_total", amount=len(dropped))
    info["dropped"] = [{"title": t, "reason": r} for t, r in dropped]
    info["summary"] = (f"{len(kept)} headline(s)" if kept else
                       f"no headlines for {state['ticker']}" + (f" in the last {n.window_hours:g}h" if info.get("provider")
                                                                else " (no news provider configured)"))
    return {"headlines": kept, "news": info}


def compute_indicators(state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    try:
        bars = state["market"]["bars"]
        if not bars["date"]:
            raise ValueError("no bars to compute indicators on")
        snap = latest_indicators(bars["high"], bars["low"], bars["close"], bars["volume"], bar_label(bars["date"][-1]))
        return {"indicators": snap.model_dump(mode="json")}
    except (ValueError, KeyError) as exc:
        return _tool_failure("indicators", exc)


def compute_risk(state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    try:
        limits = RiskLimits(**deps.settings.risk.model_dump())
        snap = risk_snapshot(state["market"]["bars"]["close"], state["indicators"].get("atr"), limits)
        return {"risk": snap.model_dump(mode="json")}
    except (ValueError, KeyError) as exc:
        return _tool_failure("risk_snapshot", exc)


# ------------------------------------------------------------------ decision node

def decide(state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    """BUY only when every layer passed, no risk rule blocks, the position is not empty and the
    portfolio guard (kill switch, open positions; the loop's paper trader) allows a new buy."""
    s = deps.settings
    ticker = state["ticker"]
    market, risk = state.get("market") or {}, state.get("risk")
    layers = state.get("layers", [])
    final = next((r for r in layers if r["layer"] == "final_score"), None)
    confidence = final["score"] if final else None
    discarded_at = state.get("discarded_at")
    decision, position = "HOLD", None
    prompt_version = combined_prompt_version(deps.prompts.versions(ticker))
    config_version = s.fingerprint()
    bar_date = market.get("bar_date")
    record_id = decision_id(ticker, bar_date or state.get("as_of") or "no-bar", config_version, prompt_version)
    index = is_index_ticker(ticker)

    if state.get("error"):
        reason = state["error"]
    elif discarded_at:
        reason = next(r["reason"] for r in reversed(layers) if r["layer"] == discarded_at)
    elif final is None or risk is None:
        discarded_at, reason = "decision", "the cascade ended without a final score"
    else:
        factor = float(state.get("size_factor", 1.0))
        shares = apply_size_factor(risk["shares"], factor, s.risk.lot_size)
        position = Position(shares=shares, entry=risk["entry"], stop=risk["stop"],
                            take_profit=risk["take_profit"], size_factor=min(factor, 1.0))
        if index:
            discarded_at, reason = "portfolio", f"{ticker} is an index: analysed and recorded, never traded"
        elif risk.get("blocks"):
            discarded_at, reason = "decision", f"risk rule: {'; '.join(risk['blocks'])}"
        elif shares <= 0:
            discarded_at, reason = "decision", f"position shrunk to zero lots (size factor {factor:.2f})"
        elif deps.guard and (blocked := deps.guard(ticker, record_id)):
            discarded_at, reason = "portfolio", f"BUY blocked: {blocked}"
        else:
            decision, reason = "BUY", final["reason"]

    record = DecisionRecord(
        decision_id=record_id,
        ts=b3_timestamp(deps.clock()),
        ticker=ticker,
        instrument="index" if index else "stock",
        bar_date=bar_date,
        decision=decision,
        confidence=confidence,
        discarded_at=discarded_at,
        reason=reason,
        position=position,
        layers=layers,
        indicators=state.get("indicators"),
        risk=risk,
        data_report=market.get("report"),
        news=state.get("news"),
        timeframes=market.get("timeframes"),
        data_source=market.get("source") or getattr(deps.market, "name", "unknown"),
        llm_provider=deps.provider.name,
        defaults_in_use=deps.defaults_in_use(market.get("source")),
        config_version=config_version,
        prompt_version=prompt_version,
        as_of=state.get("as_of"),
        origin=deps.origin,
    ).model_dump(mode="json")
    COUNTERS.inc("decisions_total", decision=decision)
    if deps.sink is not None:
        deps.sink.write(record)
    logger.info("{} {} (bar {}){}: {}", ticker, decision, bar_date,
                f" discarded at {discarded_at}" if discarded_at else "", reason[:200])
    return {"record": record}
