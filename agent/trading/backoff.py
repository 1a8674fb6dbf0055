"""Backing off a ticker that keeps failing the same way (a data or LLM outage), so one broken
ticker costs a growing number of skipped cycles instead of a failure every cycle."""

from __future__ import annotations

from typing import Any

TOOL_STAGES = ("market_data", "indicators", "risk_snapshot")
LLM_OUTAGES = ("connection", "timeout", "model_missing")


def failure_kind(record: dict[str, Any]) -> str | None:
    """The kind of a failure worth backing off (data or LLM outage), or None for a normal decision."""
    if record.get("discarded_at") in TOOL_STAGES:
        return record["discarded_at"]
    errors = [r.get("error") for r in record.get("layers", [])]
    return next((f"llm_{e}" for e in errors if e in LLM_OUTAGES), None)


class Backoff:
    """A ticker failing the same way twice or more is skipped for 1, 2, 4... cycles, capped."""

    def __init__(self, max_skip_cycles: int):
        self.max_skip = max(max_skip_cycles, 0)
        self._streak: dict[str, tuple[str, int]] = {}
        self._skip: dict[str, int] = {}

    def record(self, ticker: str, kind: str | None) -> None:
        if kind is None:
            self._streak.pop(ticker, None)
            return
        last, n = self._streak.get(ticker, (kind, 0))
        n = n + 1 if last == kind else 1
        self._streak[ticker] = (kind, n)
        if n >= 2:
            self._skip[ticker] = min(2 ** (n - 2), self.max_skip)

    def should_skip(self, ticker: str) -> str | None:
        """Consume one skipped cycle; the reason while backing off, else None."""
        left = self._skip.get(ticker, 0)
        if left <= 0:
            return None
        self._skip[ticker] = left - 1
        kind, n = self._streak[ticker]
        return f"failed {n} times in a row ({kind}); {left - 1} more cycle(s) skipped after this one"
