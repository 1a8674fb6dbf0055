"""The equity curve's benchmark: the Ibovespa from the configured market source, cached for a while."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from typing import Any, Callable

import pandas as pd

from agent.config import Settings
from agent.market.calendar import B3_TZ

IBOV = "^BVSP"
BENCHMARK_TTL_S = 600.0


class Benchmark:
    """The Ibovespa from the configured market source, fetched at most every BENCHMARK_TTL_S."""

    def __init__(self, settings: Settings, market: Any | None, clock: Callable[[], datetime]):
        self.settings, self._market, self.clock = settings, market, clock
        self._cached: tuple[float, date, Any] | None = None
        self._lock = threading.Lock()

    def market(self) -> Any:
        if self._market is None:
            from agent.market.sources import make_market_provider

            self._market = make_market_provider(self.settings)
        return self._market

    def closes(self, since: date) -> tuple[pd.Series | None, str | None, str | None]:
        """(closes from ``since``, source name, why unavailable)."""
        with self._lock:
            if self._cached and self._cached[1] <= since and time.monotonic() - self._cached[0] < BENCHMARK_TTL_S:
                return self._cached[2]
            try:
                market = self.market()
                days = (self.clock().astimezone(B3_TZ).date() - since).days + 30
                bars = market.get_bars(IBOV, "1d", lookback=max(days, 60))
                close = bars.frame["close"]
                close = close[close.index >= pd.Timestamp(since)]
                out = (close, bars.source, None if len(close) else f"no Ibovespa bars since {since} from {bars.source}")
            except Exception as exc:  # noqa: BLE001 - the curve is still shown without its benchmark
                out = (None, getattr(self._market, "name", None), f"Ibovespa unavailable: {type(exc).__name__}: {exc}")
            self._cached = (time.monotonic(), since, out)
            return out
