"""Yahoo Finance bars through yfinance (no API key), behind ``MarketDataProvider``.

Prices come auto-adjusted for dividends and splits (``auto_adjust=True``). yfinance is imported only
when the first request is made, so a run on csv or sim bars never loads it.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable, Protocol

import pandas as pd
from loguru import logger

from agent.config import normalize_ticker
from agent.errors import DataError, DataSourceUnavailable, RateLimited
from agent.market.bars import OHLCV, Bars
from agent.market.calendar import B3_TZ
from agent.market.history import (
    b3_local_index,
    b3_today,
    choose_period,
    finish_bars,
    interval_for,
)
from agent.market.ratelimit import RateLimiter
from agent.market.validation import DEFAULT_MAX_JUMP, is_index_ticker

YAHOO_INDEX_SYMBOL = "^BVSP"


def yahoo_symbol(ticker: str) -> str:
    """``PETR4`` -> ``PETR4.SA``; the Ibovespa (``IBOV``, ``BVSP``, ``^BVSP``) -> ``^BVSP``."""
    t = normalize_ticker(ticker)
    if is_index_ticker(t):
        return YAHOO_INDEX_SYMBOL
    if t.startswith("^") or "=" in t or "." in t:  # already a Yahoo symbol (another index, FX, ...)
        return t
    return f"{t}.SA"


class HistoryFetcher(Protocol):
    def __call__(self, symbol: str, *, period: str, interval: str) -> pd.DataFrame: ...


def yfinance_history(symbol: str, *, period: str, interval: str, timeout_s: float = 10.0) -> pd.DataFrame:
    """``yfinance.Ticker(symbol).history(...)`` with adjusted prices and errors raised, not logged.

    yfinance >= 1.0 deprecates ``raise_errors=True`` in favour of ``yf.config.debug.hide_exceptions =
    False`` (process-wide: it also makes yfinance's timezone lookup raise instead of returning None);
    older releases only have the keyword.
    """
    import yfinance as yf

    config = getattr(yf, "config", None)
    debug = getattr(config, "debug", None)
    kwargs: dict[str, Any] = {}
    if debug is not None and hasattr(debug, "hide_exceptions"):
        debug.hide_exceptions = False
    else:
        kwargs["raise_errors"] = True
    return yf.Ticker(symbol).history(period=period, interval=interval, auto_adjust=True, actions=True,
                                     prepost=False, timeout=timeout_s, **kwargs)


# yfinance exception class names (matched by name: yfinance is imported only when first used).
_YF_RATE_LIMIT = "YFRateLimitError"
_YF_BASE = "YFException"
# Seconds to hold off Yahoo after a rate-limit refusal (yfinance does not pass Retry-After on).
YAHOO_RATE_LIMIT_BACKOFF_S = 30.0


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


class YFinanceProvider:
    """Yahoo Finance bars through yfinance (no API key). Source tag: ``yfinance``."""

    name = "yfinance"

    def __init__(self, fetch_history: HistoryFetcher | Callable[..., pd.DataFrame] | None = None,
                 min_interval_s: float = 1.0, *, limiter: RateLimiter | None = None,
                 today: Callable[[], date] = b3_today, max_jump: float = DEFAULT_MAX_JUMP,
                 max_wait_s: float = 60.0):
        self._fetch = fetch_history or yfinance_history
        self.limiter = limiter or RateLimiter(min_interval_s)
        self._today = today
        self.max_jump = max_jump
        self.max_wait_s = max_wait_s

    def __repr__(self) -> str:
        return f"YFinanceProvider(min_interval_s={self.limiter.min_interval_s})"

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        symbol = yahoo_symbol(ticker)
        interval = interval_for(self.name, timeframe)
        choice = choose_period(timeframe, lookback, end, self._today(), allow_custom_days=True)
        raw = self._call(symbol, choice.period, interval)
        if raw is None or len(raw) == 0:
            raise DataError(f"yfinance: Yahoo returned no {interval} bars for {symbol} (period {choice.period})")
        frame = self._to_frame(raw, symbol, timeframe)
        logger.debug("yfinance {} {} period={}: {} rows {} -> {}", symbol, interval, choice.period, len(frame),
                     frame.index[0], frame.index[-1])
        return finish_bars(self.name, ticker, symbol, timeframe, frame, end, lookback, self.max_jump,
                           [choice.note] if choice.note else [])

    def _call(self, symbol: str, period: str, interval: str) -> pd.DataFrame:
        pending = self.limiter.pending()
        if pending > self.max_wait_s:
            raise RateLimited(f"yfinance: holding off Yahoo for {pending:.0f}s more after a rate limit", pending)
        self.limiter.wait()
        try:
            return self._fetch(symbol, period=period, interval=interval)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to one error class each, or re-raised
            names = _names(exc)
            if _YF_RATE_LIMIT in names:
                self.limiter.defer(YAHOO_RATE_LIMIT_BACKOFF_S)
                raise RateLimited(f"yfinance: Yahoo rate-limited the request for {symbol}: {exc}",
                                  YAHOO_RATE_LIMIT_BACKOFF_S) from exc
            if isinstance(exc, OSError):  # curl_cffi / requests / socket errors and timeouts
                raise DataSourceUnavailable(f"yfinance: network error fetching {symbol} "
                                            f"({type(exc).__name__}: {exc})") from exc
            if _YF_BASE in names:  # YFPricesMissingError, YFTzMissingError, YFInvalidPeriodError, ...
                raise DataError(f"yfinance: {symbol}: {exc}") from exc
            if isinstance(exc, (ValueError, KeyError, IndexError, TypeError)):
                raise DataError(f"yfinance could not read Yahoo's answer for {symbol} "
                                f"({type(exc).__name__}: {exc})") from exc
            raise

    @staticmethod
    def _to_frame(raw: pd.DataFrame, symbol: str, timeframe: str) -> pd.DataFrame:
        df = raw
        if isinstance(df.columns, pd.MultiIndex):  # yf.download layout: (Price, Ticker)
            df = df.droplevel(-1, axis=1)
        df = df.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
        missing = [c for c in OHLCV if c not in df.columns]
        if missing:
            raise DataError(f"yfinance: the answer for {symbol} lacks column(s) {missing} "
                            f"(got {list(raw.columns)})")
        frame = df[list(OHLCV)].copy()
        try:
            frame.index = b3_local_index(df.index, timeframe, assume_tz=str(B3_TZ))
        except (TypeError, ValueError) as exc:
            raise DataError(f"yfinance: the answer for {symbol} has no timestamp index ({exc})") from exc
        return frame.sort_index(kind="stable")
