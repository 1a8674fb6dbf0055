"""The cascade as a LangGraph state machine. Read ``build_graph`` top to bottom: it is the flow.

    load_market_data -> compute_indicators -> compute_risk -> load_news   (tool nodes, plain code)
      -> sentiment -> technical -> risk -> data_validation -> final_score   (LLM layers)
      -> decide                                                         (record to the sink)

Any tool failure or layer discard jumps straight to ``decide``, which emits HOLD with the reason.
One-shot trace: ``python -m agent.graph --ticker PETR4``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from langgraph.graph import END, START, StateGraph
from loguru import logger

from agent.cli import add_run_flags, exit_code, start
from agent.config import LAYER_NAMES, TICKER_RE, normalize_ticker
from agent.deps import CascadeDeps
from agent.errors import AgentError, ConfigError, DataError, ProviderError
from agent.layers.base import LAYERS, run_layer
from agent.ops.metrics import COUNTERS
from agent.news.feeds import CLOCK_SKEW_TOLERANCE, DEFAULT_ALIASES, format_headlines, sanitize_for_prompt, screen_headline, select_headlines
from agent.record import DecisionRecord, Position, combined_prompt_version, decision_id
from agent.store.jsonl import B3_TZ
from agent.state import CascadeState
from agent.trace import print_trace
from tools.indicators import bar_label, bar_labels, latest_indicators, timeframe_summary
from tools.risk import RiskLimits, apply_size_factor, risk_snapshot

BAR_COLUMNS = ("open", "high", "low", "close", "volume")


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
        bars = deps.market.get_bars(ticker, s.market.timeframes.primary, end=end,
                                    lookback=s.market.lookback_bars)
        if len(bars) < s.market.min_bars:
            raise DataError(f"only {len(bars)} valid bars for {bars.ticker}, need {s.market.min_bars}")
    except (AgentError, ValueError, KeyError, TypeError, OSError) as exc:
        return _tool_failure("market_data", exc)
    frame = bars.frame
    last = pd.Timestamp(frame.index[-1])
    now = decision_time(state, deps)
    timeframes = [timeframe_summary(frame, bars.timeframe).model_dump(mode="json")]
    for tf in (s.market.timeframes.secondary, s.market.timeframes.tertiary):
        timeframes.append(_secondary_timeframe(deps, ticker, tf, end, bars.source, last))
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
                     **{c: frame[c].to_numpy(dtype=float).tolist() for c in BAR_COLUMNS}},
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
                         primary_last: pd.Timestamp) -> dict[str, Any]:
    """Summary of a confirmation timeframe from the primary's source, as recent as the primary.

    Anything else (another source, e.g. a simulated fallback, or older bars) is recorded as
    unavailable with the reason, never silently mixed in, and never fatal.
    """
    try:
        bars = deps.market.get_bars(ticker, timeframe, end=end, lookback=deps.settings.market.intraday_lookback_bars)
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


# ------------------------------------------------------------------ routing

def route_after_tool(state: CascadeState) -> Literal["continue", "hold"]:
    """Did the tool node produce its snapshot, or must the cascade stop with HOLD?"""
    return "hold" if state.get("error") else "continue"


def route_after_layer(state: CascadeState) -> Literal["continue", "discard"]:
    """Did the layer that just ran pass the ticker on, or discard it?"""
    return "discard" if state.get("discarded_at") else "continue"


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
        if risk.get("blocks"):
            discarded_at, reason = "decision", f"risk rule: {'; '.join(risk['blocks'])}"
        elif shares <= 0:
            discarded_at, reason = "decision", f"position shrunk to zero lots (size factor {factor:.2f})"
        elif deps.guard and (blocked := deps.guard(ticker, record_id)):
            discarded_at, reason = "portfolio", f"BUY blocked: {blocked}"
        else:
            decision, reason = "BUY", final["reason"]

    record = DecisionRecord(
        decision_id=record_id,
        ts=deps.clock().astimezone(B3_TZ).isoformat(timespec="seconds"),
        ticker=ticker,
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


# ------------------------------------------------------------------ the graph

def build_graph(deps: CascadeDeps, checkpointer=None):
    """Compile the cascade. Nodes are plain ``state -> update`` functions bound to ``deps``.

    A checkpointer is only for the layer-major scheduler (agent/scheduler.py); Studio and the
    LangGraph server bring their own.
    """
    g = StateGraph(CascadeState)

    g.add_node("load_market_data", partial(load_market_data, deps=deps))
    g.add_node("compute_indicators", partial(compute_indicators, deps=deps))
    g.add_node("compute_risk", partial(compute_risk, deps=deps))
    g.add_node("load_news", partial(load_news, deps=deps))
    for name in LAYER_NAMES:
        g.add_node(name, partial(run_layer, LAYERS[name], deps=deps))
    g.add_node("decide", partial(decide, deps=deps))

    g.add_edge(START, "load_market_data")
    g.add_conditional_edges("load_market_data", route_after_tool, {"continue": "compute_indicators", "hold": "decide"})
    g.add_conditional_edges("compute_indicators", route_after_tool, {"continue": "compute_risk", "hold": "decide"})
    g.add_conditional_edges("compute_risk", route_after_tool, {"continue": "load_news", "hold": "decide"})
    g.add_edge("load_news", LAYER_NAMES[0])
    for layer, next_layer in zip(LAYER_NAMES, LAYER_NAMES[1:]):
        g.add_conditional_edges(layer, route_after_layer, {"continue": next_layer, "discard": "decide"})
    g.add_edge(LAYER_NAMES[-1], "decide")
    g.add_edge("decide", END)
    return g.compile(name="b3-cascade", checkpointer=checkpointer)


def initial_state(ticker: str, as_of: str | None = None, headlines: list[str] | None = None) -> CascadeState:
    return {"ticker": normalize_ticker(ticker), "as_of": as_of, "layers": [], "size_factor": 1.0,
            "headlines": headlines or []}


def run_cascade(graph, ticker: str, as_of: str | None = None, headlines: list[str] | None = None) -> dict[str, Any]:
    """Run one decision and return its record (the only channel read back: LangGraph reads the output
    channels after every step)."""
    return graph.invoke(initial_state(ticker, as_of, headlines), output_keys=["record"])["record"]


# ------------------------------------------------------------------ one-shot CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent.graph",
        description="Run the five-layer cascade once for one B3 ticker and print the trace and the decision.")
    p.add_argument("--ticker", required=True, help="B3 ticker, e.g. PETR4 (a .SA suffix is accepted)")
    add_run_flags(p)
    p.add_argument("--as-of", help="decide as of this date (YYYY-MM-DD): later bars are invisible")
    p.add_argument("--news-file", type=Path, help="local .jsonl/.csv of headlines for the sentiment layer")
    p.add_argument("--json", action="store_true", help="print only the decision record (JSON) on stdout")
    p.add_argument("--no-record", action="store_true", help="do not append the record to the log sink")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    try:
        if not TICKER_RE.match(normalize_ticker(args.ticker)):
            raise ConfigError(f"--ticker: {args.ticker!r} is not a B3 ticker (expected e.g. PETR4, VALE3)")
        if args.as_of:
            try:
                date.fromisoformat(args.as_of)
            except ValueError:
                raise ConfigError(f"--as-of: {args.as_of!r} is not a date (YYYY-MM-DD)") from None
        deps = start(args, {("news", "provider"): "file" if args.news_file else None, ("news", "file"): args.news_file},
                     sink=not args.no_record)
        record = run_cascade(build_graph(deps), args.ticker, as_of=args.as_of)
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)
    if args.json:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        print_trace(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
