"""Layer 4, data validation: the assembled proposal and the bar report. Deterministic checks
(warm-up, bar count, staleness against the B3 calendar, consistent levels) rule first."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from agent.config import Settings
from agent.layers.spec import (
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    Score,
    distance,
    risk_view,
)
from agent.state import CascadeState

# Indicator values every decision needs; a None here is a data problem, not an opinion.
REQUIRED_INDICATORS = ("rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_lower", "sma_20", "sma_50", "atr")


class DataValidationAnswer(LayerAnswer):
    valid: bool
    score: float = Score
    issues: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list, max_length=10)
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    market = state.get("market") or {}
    report = market.get("report") or {}
    shown = {
        "data_source": market.get("source"),
        "bars": bars_summary(report),
        "bar_notes": report.get("notes") or None,  # unadjusted prices, jumps: data doubts
        "calendar": {k: market.get(k) for k in ("sessions_behind", "missing_sessions", "missing_recent")
                     if market.get(k) not in (None, [])},
        "levels": levels_view(risk_view(state)),
    }
    return {k: v for k, v in shown.items() if v is not None}


def bars_summary(report: dict[str, Any]) -> str | None:
    """``"649 of 650 usable (1 dropped, 4 repaired)"``: the bar report's counts in a few tokens. Which rule
    dropped or repaired a bar stays in the record; code has acted on each already."""
    kept, read = report.get("rows_out"), report.get("rows_in")
    if kept is None or read is None:
        return None
    counts = {k: sum((report.get(k) or {}).values()) for k in ("dropped", "repaired")}
    changed = [f"{n} {k}" for k, n in counts.items() if n]
    return f"{kept} of {read} usable" + (f" ({', '.join(changed)})" if changed else "")


def levels_view(risk: dict[str, Any]) -> dict[str, str]:
    """The stop and the target as distances from the entry ("-4.0%"): a stop above the entry reads as
    "+1.5%", which a small model notices where it does not compare 14.7 and 14.9. The prices themselves
    are checked in code (precheck) and kept in the record."""
    out = {}
    for key, name in (("stop", "stop_vs_entry"), ("take_profit", "target_vs_entry")):
        if (shown := distance(risk.get(key), risk.get("entry"))) is not None:
            out[name] = shown
    return out


def precheck(state: CascadeState, s: Settings) -> Gate | None:
    market, ind, risk = state.get("market") or {}, state.get("indicators") or {}, state.get("risk") or {}
    problems = []
    missing = [k for k in REQUIRED_INDICATORS if ind.get(k) is None]
    if missing:
        problems.append(f"indicators still warming up: {', '.join(missing)}")
    n_bars = market.get("n_bars", 0)
    if n_bars < s.market.min_bars:
        problems.append(f"only {n_bars} bars, need {s.market.min_bars}")
    behind, age = market.get("sessions_behind"), market.get("bar_age_days")
    if behind is not None:
        if behind > s.market.max_stale_sessions:
            problems.append(f"stale data: last bar {market.get('bar_date')} is {behind} B3 sessions behind "
                            f"{market.get('expected_last_bar')} (max {s.market.max_stale_sessions})")
    elif age is not None and age > s.market.max_bar_age_days:
        problems.append(f"stale data: last bar {market.get('bar_date')} is {age} days old "
                        f"(max {s.market.max_bar_age_days})")
    if market.get("missing_recent"):
        problems.append(f"recent B3 sessions missing from the bars: {', '.join(market['missing_recent'])}")
    entry, stop, tp = risk.get("entry"), risk.get("stop"), risk.get("take_profit")
    if entry is not None and stop is not None and tp is not None and not (stop < entry < tp):
        problems.append(f"inconsistent levels: stop {stop}, entry {entry}, target {tp}")
    if entry is not None and ind.get("close") is not None and not math.isclose(entry, ind["close"], rel_tol=1e-6):
        problems.append(f"risk entry {entry} differs from last close {ind['close']}")
    return Gate(False, "data check: " + "; ".join(problems)) if problems else None


def gate(a: DataValidationAnswer, s: Settings) -> Gate:
    need = s.layers.data_validation.min_score
    issues = f" issues: {'; '.join(a.issues)}." if a.issues else ""
    if not a.valid:
        return Gate(False, f"data judged invalid (score {a.score:.2f}).{issues} {a.reason}")
    ok = a.score >= need
    return Gate(ok, f"data score {a.score:.2f} {'>=' if ok else '<'} {need}.{issues} {a.reason}")


def consistency(a: DataValidationAnswer, s: Settings) -> str | None:
    if a.valid and a.score < 0.5:
        return f"valid true with score {a.score:.2f} (valid data scores 0.5 or more)"
    if not a.valid and a.score >= 0.5:
        return f"valid false with score {a.score:.2f} (invalid data scores below 0.5)"
    return None


def quant_rule(state: CascadeState, s: Settings) -> DataValidationAnswer:
    """The deterministic data checks run before this layer; what reaches it is consistent."""
    return DataValidationAnswer(valid=True, score=0.9, issues=[], reason="rule: deterministic data checks passed")


SPEC = LayerSpec("data_validation", DataValidationAnswer, inputs, gate, quant_rule, precheck=precheck,
                 consistency=consistency)
