"""The cascade's typed state. Everything in it is plain JSON, so LangGraph Studio can show it
and a backtest or a layer-major scheduler can carry it between steps.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field


class LayerResult(BaseModel):
    """One layer's verdict, as it appears in the decision record's ``layers`` list."""

    model_config = ConfigDict(extra="forbid")

    layer: str
    model: str
    provider: str
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    passed: bool
    reason: str
    latency_ms: float = Field(ge=0.0)
    error: str | None = None  # kind of failure (invalid_json, timeout, ...) when the LLM failed
    flags: list[str] = Field(default_factory=list)  # e.g. misquoted indicator values
    prompt_version: str | None = None
    output: dict[str, Any] | None = None  # the validated answer, for explanations
    cached: bool = False  # replayed from the LLM cache: the same model was asked the same question before
    # the chart a layer that takes one was shown (file under LOG_DIR, bars, digest), or why it got the text only
    image: dict[str, Any] | None = None
    tokens_in: int | None = Field(default=None, ge=0)  # prompt tokens of the call (None: no call, or not reported)
    tokens_out: int | None = Field(default=None, ge=0)  # answer tokens (a grammar fallback's second try included)
    think: bool | None = None  # Ollama's think option as sent (false: reasoning off); None: not sent


class CascadeState(TypedDict, total=False):
    # --- input ---
    ticker: str
    as_of: str | None  # ISO date; bars after it are invisible (backtests). None = latest.
    headlines: list[str]  # news for the sentiment layer (untrusted: screened and sanitised by load_news)
    news: dict[str, Any]  # what the news step selected, dropped and why
    # --- set by the tool nodes ---
    market: dict[str, Any]  # source, timeframe, bar_date, report, bars (compact columns)
    indicators: dict[str, Any]
    risk: dict[str, Any]
    # --- set by the layers ---
    layers: Annotated[list[dict[str, Any]], operator.add]
    discarded_at: str | None
    size_factor: float  # product of the LLMs' shrink factors (never above 1)
    error: str | None  # a data or tool failure that forces HOLD
    # --- set by the decision node ---
    record: dict[str, Any]
