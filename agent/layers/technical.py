"""Layer 2, technical analysis: the indicators and the confirmation timeframes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agent.config import Settings
from agent.layers.spec import (
    Cited,
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    indicator,
    indicator_values,
    indicators_view,
    label_score_problem,
)
from agent.state import CascadeState


class TechnicalAnswer(LayerAnswer):
    trend: Literal["bullish", "neutral", "bearish"]
    score: float = Field(ge=0.0, le=1.0, description="0 no setup, 0.5 mixed, 1 strong bullish setup")
    cited: dict[str, float] = Cited
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    return {"indicators": readable_indicators(indicators_view(state)), "timeframes": timeframes_view(state)}


def readable_indicators(ind: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as a small model reads it best: moves and distances to the averages in percent
    ("+7.6%"), the oscillators as they are. Plain arithmetic on the computed values, no judgment."""
    close = ind.get("close")

    def pct(x: float | None) -> str | None:
        return None if x is None else f"{x:+.1%}"

    def vs(avg: str) -> str | None:
        return pct(close / ind[avg] - 1) if close and ind.get(avg) else None

    out = {"rsi": ind.get("rsi"), "macd_hist": ind.get("macd_hist"), "adx": ind.get("adx"),
           "volume_ratio": ind.get("volume_ratio"), "bb_percent": ind.get("bb_percent"),
           "change_5d": pct(ind.get("change_5d")), "change_20d": pct(ind.get("change_20d"))}
    out.update({f"close_vs_{avg}": vs(avg) for avg in ("sma_20", "sma_50", "sma_200", "ema_21")})
    return {k: v for k, v in out.items() if v is not None}


def timeframes_view(state: CascadeState) -> dict[str, Any]:
    """Each confirmation timeframe's trend and RSI, or that it is unavailable (the why stays in the record).
    The primary (daily) one is left out: the indicators already are its numbers."""
    out: dict[str, Any] = {}
    for tf in (state.get("market") or {}).get("timeframes", [])[1:]:
        if "unavailable" in tf:
            out[tf.get("timeframe", "?")] = "unavailable"
        else:
            out[tf.get("timeframe", "?")] = {k: tf.get(k) for k in ("trend", "change", "rsi") if tf.get(k) is not None}
    return out


def citable_names() -> list[str]:
    from tools.indicators import IndicatorSnapshot

    return [k for k in IndicatorSnapshot.model_fields if k != "bar_date"]


def gate(a: TechnicalAnswer, s: Settings) -> Gate:
    need = s.layers.technical.min_score
    ok = a.score >= need
    return Gate(ok, f"{a.trend} setup, score {a.score:.2f} {'>=' if ok else '<'} {need}: {a.reason}")


def consistency(a: TechnicalAnswer, s: Settings) -> str | None:
    return label_score_problem("trend", a.trend, a.score, "bullish", "bearish")


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
                 citable_names=citable_names, consistency=consistency)
