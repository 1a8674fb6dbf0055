"""Layer 5, the final score: every earlier verdict with the snapshots. BUY needs MIN_CONFIDENCE."""

from __future__ import annotations

from typing import Any

from agent.config import Settings
from agent.layers.risk import readable_risk
from agent.layers.spec import (
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    Score,
    pick,
    risk_view,
    verdicts,
)
from agent.state import CascadeState


class FinalScoreAnswer(LayerAnswer):
    score: float = Score
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    return {"earlier_layers": verdicts(state), "risk": pick(readable_risk(risk_view(state)), FINAL_RISK)}


# What the final judgment weighs besides the verdicts: the technical layer already read the indicators
# (its reason says what it saw), and the chart goes to a model that takes images.
FINAL_RISK = ("reward_risk", "volatility", "max_drawdown", "note")


def gate(a: FinalScoreAnswer, s: Settings) -> Gate:
    need = s.decision.min_confidence
    ok = a.score >= need
    return Gate(ok, f"final score {a.score:.2f} {'>=' if ok else '<'} MIN_CONFIDENCE {need}: {a.reason}")


def quant_rule(state: CascadeState, s: Settings) -> FinalScoreAnswer:
    """The mean of the sentiment, technical and data scores."""
    scores = [r["score"] for r in state.get("layers", []) if r["layer"] in ("sentiment", "technical", "data_validation")
              and r["score"] is not None]
    score = sum(scores) / len(scores) if scores else 0.0
    return FinalScoreAnswer(score=round(score, 6), reason=f"rule: mean of {len(scores)} layer scores")


SPEC = LayerSpec("final_score", FinalScoreAnswer, inputs, gate, quant_rule, chart=True)
