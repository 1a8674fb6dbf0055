"""Layer 5, the final score: every earlier verdict with the snapshots. BUY needs MIN_CONFIDENCE."""

from __future__ import annotations

from typing import Any

from agent.config import Settings
from agent.layers.spec import (
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    Score,
    indicators_view,
    pick,
    risk_view,
    verdicts,
)
from agent.state import CascadeState


class FinalScoreAnswer(LayerAnswer):
    score: float = Score
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    earlier = {v["layer"]: f"{v['score']}: {v['reason']}" for v in verdicts(state)}
    return {"earlier_layers": earlier, "indicators": pick(indicators_view(state), FINAL_INDICATORS),
            "risk": pick(risk_view(state), FINAL_RISK)}


# What the final judgment weighs besides the verdicts (the layers before saw the rest in detail).
FINAL_INDICATORS = ("close", "change_20d", "rsi", "macd_hist", "sma_50", "sma_200", "adx", "volume_ratio")
FINAL_RISK = ("reward_risk", "sharpe", "max_drawdown", "volatility")


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
