"""``quant`` mode: the same graph with every LLM layer replaced by a deterministic indicator rule.

It is a real strategy (trend-following with momentum confirmation) and the baseline the LLM
cascade must beat. Each rule returns the same validated answer type the LLM would, so the gates,
the routing, the risk rules and the records are exactly those of the cascade.
"""

from __future__ import annotations

from typing import Any, Callable

from agent.config import Settings
from agent.llm.output import (DataValidationAnswer, FinalScoreAnswer, LayerAnswer, RiskAnswer, SentimentAnswer,
                              TechnicalAnswer)
from agent.state import CascadeState

QUANT_PROVIDER = "quant"
RULES_VERSION = "quant-rules-v1"


def _get(state: CascadeState, key: str) -> Any:
    return (state.get("indicators") or {}).get(key)


def sentiment_rule(state: CascadeState, s: Settings) -> SentimentAnswer:
    """Price action as sentiment: a 20-day gain with the close above its 50-day average."""
    close, sma50, chg20 = _get(state, "close"), _get(state, "sma_50"), _get(state, "change_20d")
    if None in (close, sma50, chg20):
        return SentimentAnswer(sentiment="neutral", score=0.5, reason="rule: momentum inputs unavailable")
    if chg20 > 0 and close > sma50:
        return SentimentAnswer(sentiment="positive", score=0.8, reason=f"rule: 20-day change {chg20:+.1%}, close above SMA50")
    return SentimentAnswer(sentiment="negative", score=0.3, reason=f"rule: 20-day change {chg20:+.1%} or close below SMA50")


def technical_rule(state: CascadeState, s: Settings) -> TechnicalAnswer:
    """Uptrend (close above SMA200), MACD above its signal, RSI neither weak nor overbought."""
    close, sma200 = _get(state, "close"), _get(state, "sma_200")
    macd, signal, rsi = _get(state, "macd"), _get(state, "macd_signal"), _get(state, "rsi")
    if None in (close, sma200, macd, signal, rsi):
        return TechnicalAnswer(trend="neutral", score=0.4, reason="rule: indicators warming up")
    if close > sma200 and macd > signal and 40 <= rsi <= 70:
        return TechnicalAnswer(trend="bullish", score=0.8, reason=f"rule: above SMA200, MACD > signal, RSI {rsi:.0f}")
    return TechnicalAnswer(trend="bearish", score=0.3, reason=f"rule: trend/MACD/RSI not aligned (RSI {rsi:.0f})")


def risk_rule(state: CascadeState, s: Settings) -> RiskAnswer:
    """Risk grows with volatility relative to the configured ceiling; never resizes the position."""
    vol = (state.get("risk") or {}).get("volatility")
    risk = 0.5 if vol is None else min(1.0, vol / s.risk.max_volatility)
    return RiskAnswer(risk=round(risk, 6), approve=True, size_factor=1.0,
                      reason=f"rule: volatility {vol} against a ceiling of {s.risk.max_volatility}")


def data_validation_rule(state: CascadeState, s: Settings) -> DataValidationAnswer:
    """The deterministic data checks run before this layer; what reaches it is consistent."""
    return DataValidationAnswer(valid=True, score=0.9, issues=[], reason="rule: deterministic data checks passed")


def final_rule(state: CascadeState, s: Settings) -> FinalScoreAnswer:
    """The mean of the sentiment, technical and data scores."""
    scores = [r["score"] for r in state.get("layers", []) if r["layer"] in ("sentiment", "technical", "data_validation")
              and r["score"] is not None]
    score = sum(scores) / len(scores) if scores else 0.0
    return FinalScoreAnswer(score=round(score, 6), reason=f"rule: mean of {len(scores)} layer scores")


QUANT_RULES: dict[str, Callable[[CascadeState, Settings], LayerAnswer]] = {
    "sentiment": sentiment_rule,
    "technical": technical_rule,
    "risk": risk_rule,
    "data_validation": data_validation_rule,
    "final_score": final_rule,
}
