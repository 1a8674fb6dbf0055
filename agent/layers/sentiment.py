"""Layer 1, the fast sentiment filter: headlines (or, without them, recent price action)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agent.config import Settings
from agent.layers.spec import (
    Gate,
    LayerAnswer,
    LayerSpec,
    Reason,
    indicator,
    label_score_problem,
    move_words,
)
from agent.state import CascadeState


class SentimentAnswer(LayerAnswer):
    # The score comes before its label: written first, small models give the news's direction; written
    # after "negative", they give their confidence in the label (0.6-0.8), which contradicts it.
    score: float = Field(ge=0.0, le=1.0, description="0 very bad news, 0.5 neutral, 1 very good news")
    sentiment: Literal["positive", "neutral", "negative"]
    reason: str = Reason


def inputs(state: CascadeState) -> dict[str, Any]:
    ind = state.get("indicators") or {}
    headlines = state.get("headlines") or []
    if headlines:  # the news decides; shown the tape as well, small models read a rising one as good news
        return {"headlines": headlines}
    # The 5- and 20-day moves the prompt's rule reads; the day's move and RSI are the technical layer's.
    return {"price_action": {f"{n}_days": None if ind.get(k) is None else move_words(ind[k])
                             for n, k in ((5, "change_5d"), (20, "change_20d"))}}


def precheck(state: CascadeState, s: Settings) -> Gate | None:
    """With no headlines, the configured policy decides (``price_action`` lets the LLM judge)."""
    if state.get("headlines") or s.news.on_no_news == "price_action":
        return None
    why = (state.get("news") or {}).get("summary") or "no headlines"
    return Gate(s.news.on_no_news == "pass", f"{why}; policy news.on_no_news={s.news.on_no_news}")


def gate(a: SentimentAnswer, s: Settings) -> Gate:
    need = s.layers.sentiment.min_score
    ok = a.score >= need
    return Gate(ok, f"{a.sentiment} sentiment, score {a.score:.2f} {'>=' if ok else '<'} {need}: {a.reason}")


def consistency(a: SentimentAnswer, s: Settings) -> str | None:
    return label_score_problem("sentiment", a.sentiment, a.score, "positive", "negative")


def quant_rule(state: CascadeState, s: Settings) -> SentimentAnswer:
    """Price action as sentiment: a 20-day gain with the close above its 50-day average."""
    close, sma50, chg20 = indicator(state, "close"), indicator(state, "sma_50"), indicator(state, "change_20d")
    if None in (close, sma50, chg20):
        return SentimentAnswer(sentiment="neutral", score=0.5, reason="rule: momentum inputs unavailable")
    if chg20 > 0 and close > sma50:
        return SentimentAnswer(sentiment="positive", score=0.8, reason=f"rule: 20-day change {chg20:+.1%}, close above SMA50")
    return SentimentAnswer(sentiment="negative", score=0.3, reason=f"rule: 20-day change {chg20:+.1%} or close below SMA50")


SPEC = LayerSpec("sentiment", SentimentAnswer, inputs, gate, quant_rule, precheck=precheck, consistency=consistency)
