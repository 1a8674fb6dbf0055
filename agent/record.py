"""The decision record: one JSON object per decision, validated before it is written.

``decision_id`` is deterministic (ticker, bar date, config and prompt versions), so the same
decision on the same bar always has the same id: the paper broker uses it to never act twice.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.ops.metrics import COUNTERS
from agent.state import LayerResult

RECORD_SCHEMA_VERSION = 1

# What an LLM answer (or an error about it) may put into a record: longer text is cut, and each cut counted
# in record_truncations_total, so a broken or hostile model never makes a decision line megabytes long.
MAX_REASON_CHARS = 2000
MAX_FLAG_CHARS = 200
MAX_FLAGS = 20


def bounded(text: str, limit: int, field: str) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut; each cut counted by ``field``."""
    if len(text) <= limit:
        return text
    COUNTERS.inc("record_truncations_total", field=field)
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def bounded_flags(flags: list[str]) -> list[str]:
    """At most MAX_FLAGS flags of at most MAX_FLAG_CHARS each (a model citing thousands of made-up names)."""
    kept = [bounded(flag, MAX_FLAG_CHARS, "flag") for flag in flags[:MAX_FLAGS]]
    if len(flags) > MAX_FLAGS:
        COUNTERS.inc("record_truncations_total", field="flags")
        kept.append(f"... {len(flags) - MAX_FLAGS} more flags cut")
    return kept


def decision_id(ticker: str, bar_date: str, config_version: str, prompt_version: str) -> str:
    blob = f"{ticker}|{bar_date}|{config_version}|{prompt_version}".encode()
    return f"{ticker}-{bar_date[:10]}-{hashlib.sha256(blob).hexdigest()[:12]}"


def combined_prompt_version(versions: dict[str, str]) -> str:
    blob = "|".join(f"{k}={versions[k]}" for k in sorted(versions)).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


class Position(BaseModel):
    """The long position a BUY would open (computed by tools/risk.py, shrunk only by LLMs)."""

    model_config = ConfigDict(extra="forbid")

    shares: int = Field(ge=0)
    entry: float = Field(gt=0)
    stop: float | None
    take_profit: float
    size_factor: float = Field(ge=0.0, le=1.0)


class DecisionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = RECORD_SCHEMA_VERSION
    # identification
    decision_id: str
    ts: str  # ISO-8601 with timezone: when the decision was made
    ticker: str
    # an index (IBOV in B3_TICKERS) goes through the cascade and is recorded like a stock, but is never traded:
    # its decision is always HOLD, and the reason says so
    instrument: Literal["stock", "index"] = "stock"
    bar_date: str | None  # the last bar the decision saw
    # outcome
    decision: Literal["BUY", "HOLD"]
    confidence: float | None = Field(ge=0.0, le=1.0)  # the final score; null when not reached
    discarded_at: str | None
    reason: str
    position: Position | None
    # the cascade
    layers: list[LayerResult]
    # snapshots
    indicators: dict[str, Any] | None
    risk: dict[str, Any] | None
    data_report: dict[str, Any] | None
    news: dict[str, Any] | None  # headlines used, and those dropped (e.g. prompt injection) with reasons
    timeframes: list[dict[str, Any]] | None  # primary, secondary, tertiary summaries (or why unavailable)
    # provenance
    data_source: str
    llm_provider: str
    mode: Literal["simulation"] = "simulation"
    defaults_in_use: list[str]
    config_version: str
    prompt_version: str
    as_of: str | None
    # who decided: only the loop's BUYs become paper orders (a one-shot trace or Studio never trades)
    origin: Literal["loop", "one_shot", "studio", "backtest"] = "one_shot"
