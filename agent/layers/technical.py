"""Layer 2, technical analysis: the indicators and the confirmation timeframes."""

from __future__ import annotations

from typing import Any, Literal

from agent.config import Settings
from agent.layers.spec import (
    Cited,
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    Score,
    indicator,
    indicator_values,
    indicators_view,
)
from agent.state import CascadeState


class TechnicalAnswer(LayerAnswer):
    trend: Literal["bullish", "neutral", "bearish"]
    score: float = Score
    reason: str = Reason
    cited: dict[str, float] = Cited


def inputs(state: CascadeState) -> dict[str, Any]:
    return {"indicators": indicators_view(state), "timeframes": (state.get("market") or {}).get("timeframes", [])}


def citable_names() -> list[str]:
    from tools.indicators import IndicatorSnapshot

    return [k for k in IndicatorSnapshot.model_fields if k != "bar_date"]


def gate(a: TechnicalAnswer, s: Settings) -> Gate:
    need = s.layers.technical.min_score
    ok = a.score >= need
    return Gate(ok, f"{a.trend} setup, score {a.score:.2f} {'>=' if ok else '<'} {need}: {a.reason}")


def quant_rule(state: CascadeState, s: Settings) -> TechnicalAnswer:
    """Uptrend (close above SMA200), MACD above its signal, RSI neither weak nor overbought."""
    close, sma200 = indicator(state, "close"), indicator(state, "sma_200")
    macd, signal, rsi = indicator(state, "macd"), indicator(state, "macd_signal"), indicator(state, "rsi")
    if None in (close, sma200, macd, signal, rsi):
        return TechnicalAnswer(trend="neutral", score=0.4, reason="rule: indicators warming up")
    if close > sma200 and macd > signal and 40 <= rsi <= 70:
        return TechnicalAnswer(trend="bullish", score=0.8, reason=f"rule: above SMA200, MACD > signal, RSI {rsi:.0f}")
    return TechnicalAnswer(trend="bearish", score=0.3, reason=f"rule: trend/MACD/RSI not aligned (RSI {rsi:.0f})")


SPEC = LayerSpec("technical", TechnicalAnswer, inputs, gate, quant_rule, citable=indicator_values,
                 citable_names=citable_names)
