"""Live market data: Yahoo Finance (through yfinance) and brapi.dev, behind ``MarketDataProvider``.

Both providers return the same frame as the offline ones: lower-case ``open high low close volume``,
indexed by a tz-naive timestamp in B3 local time (America/Sao_Paulo), oldest first, prices adjusted
for dividends and splits (yfinance ``auto_adjust=True``; brapi ``adjustedClose / close``), and every
frame goes through ``validate_bars``.

Windowing: bars after ``end`` are cut *before* validation (so a split after ``end`` cannot change the
bars before it: no look-ahead), then the last ``lookback`` valid bars are kept. As with ``CsvProvider``,
``Bars.report`` describes the validation of everything fetched up to ``end``.

History limits and the ``period``/``range`` sent
-------------------------------------------------
The request covers ``lookback`` bars before ``end`` plus the days from ``end`` to today, estimated
from a short B3 session (10:00-17:00: 7 hourly bars, 14 of 30 minutes, ...) and 1.55 calendar days per
session (weekends and holidays). The smallest period that covers it is sent, capped by what Yahoo
keeps for intraday intervals: ``1h`` about 730 days, ``5m``/``15m``/``30m`` 60 days, ``1m`` 7 days.
yfinance gets ``1d 5d 1mo 3mo 6mo 1y 2y 5y 10y max`` or, at the cap, ``730d``/``60d``/``7d`` (yfinance
>= 0.2.5x accepts ``<n>d``); brapi only gets its fixed ranges, so its caps are ``1y``/``1mo``/``5d``.
When the cap cuts the lookback, ``Bars.report.notes`` says so; when ``end`` itself is older than the
cap, a ``DataError`` says so instead of fetching.

Errors: one class, one action (see ``agent.errors``)
----------------------------------------------------
- ``DataSourceUnavailable`` (a ``DataError``): network failure, timeout, HTTP 5xx. Action: retry later
  (the caller's policy); until then it is a ``DataError``, so the ticker is skipped and
  ``CachedProvider`` serves cached bars. yfinance's network errors (``OSError`` subclasses from
  curl_cffi) are re-raised as this class, chained, never passed on raw.
- ``RateLimited`` (a ``DataSourceUnavailable``): HTTP 429 / yfinance ``YFRateLimitError``. Action:
  retry after ``retry_after`` seconds (``Retry-After`` honoured); the provider's ``RateLimiter`` is
  pushed back by that delay so its next request waits, and while the wait would exceed
  ``max_wait_s`` it raises ``RateLimited`` at once without calling the API.
- ``BrapiAuthError`` (a ``ConfigError``): HTTP 401, the token is missing or invalid. Action: stop
  and fix ``BRAPI_TOKEN``; retrying or skipping tickers cannot help. The token is never in the text.
- ``DataError``: everything else (unknown ticker, empty answer, malformed answer, 4xx, unsupported
  timeframe, ``end`` beyond the history limit). Action: skip the ticker (HOLD with the reason).

Secrets: the brapi token travels only in the ``Authorization: Bearer`` header (brapi accepts the
header or a ``token`` query parameter; the header keeps it out of URLs, logs and proxies), is kept as
a ``SecretStr``, and ``redact`` scrubs it from every message this module builds or logs.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Protocol
from urllib.parse import quote

import httpx
import pandas as pd
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agent.config import normalize_ticker
from agent.errors import ConfigError, DataError
from agent.ops.logs import redact
from agent.market.bars import DEFAULT_MAX_JUMP, OHLCV, Bars, bars_until, is_index_ticker, validate_bars
from agent.store.jsonl import B3_TZ

__all__ = [
    "BrapiAuthError",
    "BrapiProvider",
    "DataSourceUnavailable",
    "RateLimited",
    "RateLimiter",
    "YFinanceProvider",
    "brapi_symbol",
    "choose_period",
    "parse_retry_after",
    "redact",
    "yahoo_symbol",
    "yfinance_history",
]


# ------------------------------------------------------------------ errors

class DataSourceUnavailable(DataError):
    """The data source could not be reached or failed on its side (network, timeout, HTTP 5xx).

    Action: retry later. Being a ``DataError``, a caller without a retry policy skips the ticker.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(DataSourceUnavailable):
    """The source refused the request for its rate limit (HTTP 429). Action: retry after ``retry_after`` s."""


class BrapiAuthError(ConfigError):
    """brapi rejected the token or asked for one (HTTP 401). Action: stop and fix BRAPI_TOKEN."""


# ------------------------------------------------------------------ rate limiting

class RateLimiter:
    """At least ``min_interval_s`` between the starts of two requests; ``defer`` pushes the next one back.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable so tests run on a fake clock.
    Thread-safe: concurrent callers are spaced one after the other.
    """

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if min_interval_s < 0 or math.isnan(min_interval_s):
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf
        self._lock = threading.Lock()

    def pending(self) -> float:
        """Seconds the next ``wait`` would sleep."""
        return max(0.0, self._next - self._clock())

    def wait(self) -> float:
        """Block until a request may start, and book the slot. Returns the seconds slept."""
        with self._lock:
            delay = max(0.0, self._next - self._clock())
            if delay > 0:
                self._sleep(delay)
            self._next = max(self._clock(), self._next) + self.min_interval_s
            return delay

    def defer(self, seconds: float) -> None:
        """No request before ``seconds`` from now (e.g. a server's Retry-After)."""
        with self._lock:
            self._next = max(self._next, self._clock() + max(0.0, seconds))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# ------------------------------------------------------------------ symbols, intervals and periods

YAHOO_INDEX_SYMBOL = "^BVSP"


def yahoo_symbol(ticker: str) -> str:
    """``PETR4`` -> ``PETR4.SA``; the Ibovespa (``IBOV``, ``BVSP``, ``^BVSP``) -> ``^BVSP``."""
    t = normalize_ticker(ticker)
    if is_index_ticker(t):
        return YAHOO_INDEX_SYMBOL
    if t.startswith("^") or "=" in t or "." in t:  # already a Yahoo symbol (another index, FX, ...)
        return t
    return f"{t}.SA"


def brapi_symbol(ticker: str) -> str:
    """brapi uses the bare B3 code (``PETR4``) and ``^BVSP`` for the Ibovespa."""
    t = normalize_ticker(ticker)
    return YAHOO_INDEX_SYMBOL if is_index_ticker(t) else t


# Project timeframe -> provider interval (both accept these names).
INTERVALS = {"1d": "1d", "1wk": "1wk", "1h": "1h", "30m": "30m", "15m": "15m", "5m": "5m", "1m": "1m"}
# Bars in a short B3 session (10:00-17:00): the estimate errs towards fetching more days.
BARS_PER_SESSION = {"1d": 1.0, "1wk": 0.2, "1h": 7.0, "30m": 14.0, "15m": 28.0, "5m": 84.0, "1m": 420.0}
CALENDAR_DAYS_PER_SESSION = 1.55  # 7/5 for weekends, plus B3 holidays and a margin
# How far back Yahoo serves intraday bars (calendar days before today); brapi serves Yahoo's data.
MAX_HISTORY_DAYS = {"1h": 730, "30m": 60, "15m": 60, "5m": 60, "1m": 7}
# Fixed periods and the calendar days each one surely covers (2y can be 731 days: above the 1h cap).
STANDARD_PERIODS: tuple[tuple[str, float], ...] = (
    ("1d", 1), ("5d", 5), ("1mo", 28), ("3mo", 89), ("6mo", 181), ("1y", 365), ("2y", 731),
    ("5y", 1826), ("10y", 3652), ("max", math.inf),
)


@dataclass(frozen=True)
class PeriodChoice:
    period: str
    days_needed: int
    note: str | None = None  # set when the history limit cuts the lookback


def _interval(provider: str, timeframe: str) -> str:
    try:
        return INTERVALS[timeframe]
    except KeyError:
        raise DataError(f"{provider}: timeframe {timeframe!r} is not supported "
                        f"(one of {', '.join(INTERVALS)})") from None


def choose_period(timeframe: str, lookback: int, end: date | None, today: date,
                  allow_custom_days: bool = True) -> PeriodChoice:
    """The smallest period covering ``lookback`` bars up to ``end`` (see the module docstring)."""
    if timeframe not in BARS_PER_SESSION:
        raise DataError(f"timeframe {timeframe!r} is not supported (one of {', '.join(INTERVALS)})")
    if lookback < 1:
        raise DataError(f"lookback must be at least 1 bar, got {lookback}")
    behind = max(0, (today - end).days) if end is not None else 0
    sessions = math.ceil(lookback / BARS_PER_SESSION[timeframe])
    needed = behind + math.ceil(sessions * CALENDAR_DAYS_PER_SESSION) + 3
    limit = MAX_HISTORY_DAYS.get(timeframe)
    if limit is not None and behind >= limit:
        raise DataError(f"{timeframe} bars are kept for only the last {limit} days; end={end} is {behind} days ago")
    candidates = [(name, days) for name, days in STANDARD_PERIODS if limit is None or days <= limit]
    if limit is not None and allow_custom_days:
        candidates.append((f"{limit}d", limit))
    for name, days in candidates:
        if days >= needed:
            return PeriodChoice(name, needed)
    name, days = candidates[-1]
    note = (f"{timeframe} history is limited to about {limit} days: period {name} may hold fewer than "
            f"the {lookback} bars asked for") if limit is not None else None
    return PeriodChoice(name, needed, note)


def _b3_today() -> date:
    return datetime.now(B3_TZ).date()


# ------------------------------------------------------------------ shared finishing step

def _finish(provider: str, ticker: str, symbol: str, timeframe: str, frame: pd.DataFrame, end: date | None,
            lookback: int, max_jump: float, notes: list[str]) -> Bars:
    """Cut at ``end``, validate, keep the last ``lookback`` bars."""
    if end is not None and timeframe == "1wk":  # a week is complete only when its Friday is on or before ``end``
        frame = frame.loc[frame.index + pd.Timedelta(days=4) < pd.Timestamp(end) + pd.Timedelta(days=1)]
    else:
        frame = bars_until(frame, end)
    if frame.empty:
        raise DataError(f"{provider}: no {timeframe} bars for {symbol} up to {end or 'today'}")
    valid, report = validate_bars(frame, is_index=is_index_ticker(ticker), max_jump=max_jump)
    if valid.empty:
        raise DataError(f"{provider}: none of the {len(frame)} {timeframe} bars for {symbol} passed validation "
                        f"({report.dropped})")
    report.notes.extend(notes)
    valid = valid.iloc[-lookback:]
    return Bars(ticker, timeframe, provider, valid, report)


def _local_index(index: pd.Index, timeframe: str, assume_tz: str | None = None) -> pd.DatetimeIndex:
    """A tz-naive B3-local index. Daily/weekly labels keep their own calendar date."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is None and assume_tz is not None:
        idx = idx.tz_localize(assume_tz)
    if idx.tz is not None:
        if timeframe in ("1d", "1wk"):
            idx = idx.tz_localize(None)  # the date in the exchange's own zone, as labelled
        else:
            idx = idx.tz_convert(B3_TZ).tz_localize(None)
    if timeframe in ("1d", "1wk"):
        idx = idx.normalize()
    return idx.as_unit("ns").rename("date")


# ------------------------------------------------------------------ yfinance

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
                 today: Callable[[], date] = _b3_today, max_jump: float = DEFAULT_MAX_JUMP,
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
        interval = _interval(self.name, timeframe)
        choice = choose_period(timeframe, lookback, end, self._today(), allow_custom_days=True)
        raw = self._call(symbol, choice.period, interval)
        if raw is None or len(raw) == 0:
            raise DataError(f"yfinance: Yahoo returned no {interval} bars for {symbol} (period {choice.period})")
        frame = self._to_frame(raw, symbol, timeframe)
        logger.debug("yfinance {} {} period={}: {} rows {} -> {}", symbol, interval, choice.period, len(frame),
                     frame.index[0], frame.index[-1])
        return _finish(self.name, ticker, symbol, timeframe, frame, end, lookback, self.max_jump,
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
        frame = df[OHLCV].copy()
        try:
            frame.index = _local_index(df.index, timeframe, assume_tz=str(B3_TZ))
        except (TypeError, ValueError) as exc:
            raise DataError(f"yfinance: the answer for {symbol} has no timestamp index ({exc})") from exc
        return frame.sort_index(kind="stable")


# ------------------------------------------------------------------ brapi

class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BrapiBar(_Model):
    """One ``historicalDataPrice`` entry. Prices may be null (dropped later); the keys must be there."""

    date: int
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None
    adjusted_close: float | None = Field(default=None, alias="adjustedClose")


class BrapiResult(_Model):
    symbol: str
    historical_data_price: list[BrapiBar] | None = Field(default=None, alias="historicalDataPrice")


class BrapiQuoteResponse(_Model):
    results: list[BrapiResult] = Field(min_length=1)


# brapi's ``range`` values (the fixed subset both its docs and its SDK list; no custom "<n>d").
BRAPI_RANGES = ("1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max")


def _describe_validation(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class BrapiProvider:
    """brapi.dev quotes over plain HTTP (``GET /api/quote/{ticker}?range=..&interval=..``). Source tag: ``brapi``."""

    name = "brapi"

    def __init__(self, token: SecretStr | str | None = None, base_url: str = "https://brapi.dev",
                 client: httpx.Client | None = None, min_interval_s: float = 1.0, *,
                 limiter: RateLimiter | None = None, today: Callable[[], date] = _b3_today,
                 timeout_s: float = 15.0, max_jump: float = DEFAULT_MAX_JUMP, max_wait_s: float = 60.0):
        if isinstance(token, str):
            token = SecretStr(token)
        self._token: SecretStr | None = token if token is not None and token.get_secret_value() else None
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s, headers={"Accept": "application/json"})
        self.limiter = limiter or RateLimiter(min_interval_s)
        self._today = today
        self.timeout_s = timeout_s
        self.max_jump = max_jump
        self.max_wait_s = max_wait_s

    def __repr__(self) -> str:
        return f"BrapiProvider(base_url={self.base_url!r}, token={'set' if self._token else 'unset'})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> "BrapiProvider":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        return redact(text, self._token)

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        symbol = brapi_symbol(ticker)
        interval = _interval(self.name, timeframe)
        choice = choose_period(timeframe, lookback, end, self._today(), allow_custom_days=False)
        body = self._request(symbol, {"range": choice.period, "interval": interval})
        frame, notes = self._to_frame(body, symbol, timeframe)
        if choice.note:
            notes.append(choice.note)
        return _finish(self.name, ticker, symbol, timeframe, frame, end, lookback, self.max_jump, notes)

    # -- HTTP

    def _request(self, symbol: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}/api/quote/{quote(symbol, safe='')}"
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        pending = self.limiter.pending()
        if pending > self.max_wait_s:
            raise RateLimited(f"brapi: rate-limited, next request allowed in {pending:.0f}s", pending)
        self.limiter.wait()
        shown = self._redact(str(httpx.URL(url, params=params)))
        logger.debug("brapi GET {}", shown)
        try:
            resp = self._client.get(url, params=params, headers=headers, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise DataSourceUnavailable(f"brapi: timed out after {self.timeout_s:g}s on {shown}") from None
        except httpx.TransportError as exc:
            raise DataSourceUnavailable(self._redact(f"brapi: {type(exc).__name__} on {shown}: {exc}")) from None
        if resp.status_code >= 400:
            self._raise_for_status(resp, symbol, shown)
        try:
            body = resp.json()
        except ValueError:
            ctype = resp.headers.get("content-type", "?")
            raise DataError(f"brapi: the answer for {symbol} is not JSON (HTTP {resp.status_code}, {ctype})") from None
        if isinstance(body, dict) and body.get("error") and not body.get("results"):
            raise DataError(f"brapi: error for {symbol}: {self._message(body)}")
        return body

    def _message(self, body: Any) -> str:
        msg = body.get("message") if isinstance(body, dict) else None
        if not isinstance(msg, str) or not msg.strip():
            return "no message"
        code = body.get("code")
        text = f"{msg.strip()[:300]}" + (f" [{code}]" if isinstance(code, str) else "")
        return self._redact(text)

    def _raise_for_status(self, resp: httpx.Response, symbol: str, shown: str) -> None:
        status = resp.status_code
        try:
            detail = self._message(resp.json())
        except ValueError:
            detail = self._redact(resp.text.strip()[:200]) or "empty body"
        if status == 401:
            if self._token is None:
                raise BrapiAuthError(f"brapi answered HTTP 401 for {symbol} without a token: set BRAPI_TOKEN "
                                     f"(a free token from brapi.dev/dashboard). brapi said: {detail}")
            raise BrapiAuthError(f"brapi rejected BRAPI_TOKEN as invalid or expired (HTTP 401 for {symbol}); "
                                 f"check it at brapi.dev/dashboard. brapi said: {detail}")
        if status == 429:
            retry_after = parse_retry_after(resp.headers.get("retry-after"))
            wait = retry_after if retry_after is not None else max(self.limiter.min_interval_s * 10, 10.0)
            self.limiter.defer(wait)
            hint = f"retry after {retry_after:g}s" if retry_after is not None else "no Retry-After given"
            raise RateLimited(f"brapi: rate limit reached (HTTP 429 for {symbol}, {hint}): {detail}", retry_after)
        if status >= 500:
            raise DataSourceUnavailable(f"brapi: server error HTTP {status} for {symbol} on {shown}: {detail}")
        if status == 404:
            raise DataError(f"brapi: no quote for {symbol} (HTTP 404): {detail}")
        if status == 402 or status == 403:
            raise DataError(f"brapi: the plan behind BRAPI_TOKEN does not cover this request for {symbol} "
                            f"(HTTP {status}): {detail}")
        raise DataError(f"brapi: HTTP {status} for {symbol} on {shown}: {detail}")

    # -- parsing

    def _to_frame(self, body: Any, symbol: str, timeframe: str) -> tuple[pd.DataFrame, list[str]]:
        try:
            parsed = BrapiQuoteResponse.model_validate(body)
        except ValidationError as exc:
            raise DataError(f"brapi: the answer for {symbol} does not have the expected shape: "
                            f"{_describe_validation(exc)}") from None
        result = parsed.results[0]
        if result.symbol.upper() != symbol.upper():
            raise DataError(f"brapi: asked for {symbol}, the answer is for {result.symbol}")
        bars = result.historical_data_price
        if bars is None:
            raise DataError(f"brapi: the answer for {symbol} has no historicalDataPrice "
                            f"(is the range/interval allowed by the plan?)")
        if not bars:
            raise DataError(f"brapi: no {timeframe} bars for {symbol}")
        frame = pd.DataFrame(
            [(b.date, b.open, b.high, b.low, b.close, b.volume, b.adjusted_close) for b in bars],
            columns=["ts", *OHLCV, "adjusted_close"],
        )
        stamps = pd.to_datetime(frame.pop("ts"), unit="s", utc=True)
        frame.index = _local_index(pd.DatetimeIndex(stamps).tz_convert(B3_TZ), timeframe)
        frame = frame.astype(float)
        notes: list[str] = []
        adj = frame.pop("adjusted_close")
        close = frame["close"]
        if adj.notna().any():
            # Dividend/split-adjusted like yfinance auto_adjust: scale OHLC by adjustedClose / close.
            # A bar with a close but no adjustedClose gets NaN prices and is dropped (counted) by validation.
            factor = adj / close.where(close > 0)
            for col in ("open", "high", "low", "close"):
                frame[col] = frame[col] * factor
        else:
            notes.append("brapi sent no adjustedClose: prices are not adjusted for dividends")
        return frame.sort_index(kind="stable"), notes
