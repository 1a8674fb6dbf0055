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
    move_words,
)
from agent.state import CascadeState


class TechnicalAnswer(LayerAnswer):
    trend: Literal["bullish", "neutral", "bearish"]
    score: float = Field(ge=0.0, le=1.0, description="0 no setup, 0.5 mixed, 1 strong bullish setup")
    cited: dict[str, float] = Cited
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    return chart_signals(indicators_view(state), timeframe_trends(state))


def chart_signals(ind: dict[str, Any], trends: dict[str, str] | None = None) -> dict[str, str]:
    """The snapshot as short facts sorted by the textbook reading of each indicator, for a long entry:
    bullish, bearish, and context that qualifies either side. Small models misread tables of signed
    percentages (they call +4.9% "below SMA 50"); a fact sorted by plain thresholds, with its number, they
    can weigh. Which facts matter, and how much, is left to the model. Each side is one string: given a
    list, the models echo its items as a broken JSON array in their reason."""
    bull: list[str] = []
    bear: list[str] = []
    context: list[str] = []
    close = ind.get("close")
    above = [a for a in ("sma_20", "sma_50", "sma_200") if close and ind.get(a) and close > ind[a]]
    below = [a for a in ("sma_20", "sma_50", "sma_200") if close and ind.get(a) and close < ind[a]]
    if above:
        bull.append("close above " + _averages(above))
    if below:
        bear.append("close below " + _averages(below))
    hist = ind.get("macd_hist")
    if hist is not None and hist != 0:
        (bull if hist > 0 else bear).append(f"MACD {'above' if hist > 0 else 'below'} its signal line")
    rsi = None if ind.get("rsi") is None else round(ind["rsi"])  # the band of the number shown
    if rsi is not None:
        if rsi >= 70:
            bear.append(f"RSI {rsi}: overbought")
        elif rsi >= 50:
            bull.append(f"RSI {rsi}: momentum up")
        else:
            bear.append(f"RSI {rsi}: momentum down" + (", oversold" if rsi < 30 else ""))
    for key, days in (("change_20d", 20), ("change_5d", 5)):
        move = ind.get(key)
        if move is not None and round(abs(move), 3) >= 0.02:  # as shown, to 0.1%
            (bull if move > 0 else bear).append(f"{move_words(move)} in {days} days")
    adx = ind.get("adx")
    if adx is not None and (adx >= 25 or adx < 20):
        context.append(f"ADX {adx:.0f}: {'strong' if adx >= 25 else 'weak'} trend")
    bb = ind.get("bb_percent")
    if bb is not None and (bb > 1 or bb < 0):
        context.append(f"close {'above the upper' if bb > 1 else 'below the lower'} Bollinger band")
    volume = ind.get("volume_ratio")
    if volume is not None and volume >= 1.5:
        context.append(f"volume {volume:.1f}x its 20-day average")
    for tf, trend in (trends or {}).items():
        if trend in ("up", "down"):
            (bull if trend == "up" else bear).append(f"{tf} chart trending {trend}")
    return {"bullish": "; ".join(bull) or "none", "bearish": "; ".join(bear) or "none",
            "context": "; ".join(context) or "none"}


def _averages(names: list[str]) -> str:
    """``SMA 20, 50 and 200``."""
    periods = [n.removeprefix("sma_") for n in names]
    return "SMA " + (f"{', '.join(periods[:-1])} and {periods[-1]}" if len(periods) > 1 else periods[0])


def timeframe_trends(state: CascadeState) -> dict[str, str]:
    """Each confirmation timeframe's trend (up, down, flat), or that it is unavailable (the why stays in
    the record). The primary (daily) one is left out: the indicators already are its numbers. Only an up
    or down trend becomes a fact."""
    out: dict[str, str] = {}
    for tf in ((state.get("market") or {}).get("timeframes") or [])[1:]:
        out[tf.get("timeframe", "?")] = "unavailable" if "unavailable" in tf else (tf.get("trend") or "unknown")
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
