"""Layer 3, risk validation: the computed risk snapshot. The deterministic risk rules (tools/risk.py)
rule first; the model can only refuse or shrink the position."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agent.config import Settings
from agent.layers.spec import (
    Cited,
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    distance,
    risk_values,
    risk_view,
)
from agent.state import CascadeState


class RiskAnswer(LayerAnswer):
    approve: bool
    risk: float = Field(ge=0.0, le=1.0, description="0.0 = no risk, 1.0 = unacceptable")
    size_factor: float = Field(ge=0.0, le=1.0, description="fraction of the computed position to take, at most 1.0")
    cited: dict[str, float] = Cited
    reason: str = Reason

    def recorded_score(self) -> float:
        return round(1.0 - self.risk, 6)  # its safety: higher is better, like every other layer's score


def inputs(state: CascadeState) -> dict[str, Any]:
    return readable_risk(risk_view(state))


def readable_risk(r: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as a small model reads it: the stop and the target as distances from the entry
    ("-4.1%", "+1.2%"; named apart from the prices ``cited`` is checked against), so that which is nearer
    is plain, volatility and drawdown in percent, and one fact that is arithmetic, not judgment: a
    reward/risk below 1 means the target is nearer than the stop.
    The sizes and the limits that set them stay in the record; the model cannot change them."""
    rr = r.get("reward_risk")
    out = {"reward_risk": rr, "stop_vs_entry": distance(r.get("stop"), r.get("entry")),
           "target_vs_entry": distance(r.get("take_profit"), r.get("entry")),
           "volatility": None if r.get("volatility") is None else f"{r['volatility']:.0%} a year",
           "max_drawdown": None if r.get("max_drawdown") is None else f"{r['max_drawdown']:.0%}",
           "sharpe": r.get("sharpe")}
    if rr is not None and rr < 1:
        out["note"] = "the target is nearer than the stop"
    return {k: v for k, v in out.items() if v is not None}


def citable_names() -> list[str]:
    from tools.risk import RiskSnapshot

    return [k for k in RiskSnapshot.model_fields if k != "blocks"]


def precheck(state: CascadeState, s: Settings) -> Gate | None:
    blocks = (state.get("risk") or {}).get("blocks") or []
    return Gate(False, f"risk rule: {'; '.join(blocks)}") if blocks else None


def gate(a: RiskAnswer, s: Settings) -> Gate:
    limit = s.layers.risk.max_risk
    if not a.approve:
        return Gate(False, f"not approved (risk {a.risk:.2f}): {a.reason}")
    if a.risk > limit:
        return Gate(False, f"risk {a.risk:.2f} above tolerance {limit}: {a.reason}")
    if a.size_factor <= 0:
        return Gate(False, f"size factor 0: {a.reason}")
    return Gate(True, f"risk {a.risk:.2f} <= {limit}, size factor {a.size_factor:.2f}: {a.reason}")


def consistency(a: RiskAnswer, s: Settings) -> str | None:
    """An approval must fit the limit it is approved under; a refusal is always consistent (conservative)."""
    limit = s.layers.risk.max_risk
    if a.approve and a.risk > limit:
        return f"approve true with risk {a.risk:.2f} above the limit {limit}"
    if a.approve and a.size_factor <= 0:
        return "approve true with size_factor 0"
    return None


def quant_rule(state: CascadeState, s: Settings) -> RiskAnswer:
    """Risk grows with volatility relative to the configured ceiling; never resizes the position."""
    vol = (state.get("risk") or {}).get("volatility")
    risk = 0.5 if vol is None else min(1.0, vol / s.risk.max_volatility)
    return RiskAnswer(risk=round(risk, 6), approve=True, size_factor=1.0,
                      reason=f"rule: volatility {vol} against a ceiling of {s.risk.max_volatility}")


SPEC = LayerSpec("risk", RiskAnswer, inputs, gate, quant_rule, precheck=precheck, citable=risk_values,
                 citable_names=citable_names, consistency=consistency)
