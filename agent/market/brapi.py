"""brapi.dev quotes over plain HTTP, behind ``MarketDataProvider``.

Prices are adjusted like yfinance's (OHLC scaled by ``adjustedClose / close``). A missing or rejected
token is ``BrapiAuthError`` (a ``ConfigError``): stop and fix BRAPI_TOKEN, since retrying or skipping
tickers cannot help.

Secrets: the brapi token travels only in the ``Authorization: Bearer`` header (brapi accepts the
header or a ``token`` query parameter; the header keeps it out of URLs, logs and proxies), is kept as
a ``SecretStr``, and ``redact`` scrubs it from every message this module builds or logs.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Callable
from urllib.parse import quote

import httpx
import pandas as pd
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agent.config import normalize_ticker
from agent.errors import (
    BrapiAuthError,
    DataError,
    DataSourceUnavailable,
    RateLimited,
    validation_problems,
)
from agent.market.bars import OHLCV, Bars
from agent.market.calendar import B3_TZ
from agent.market.history import (
    b3_local_index,
    b3_today,
    choose_period,
    finish_bars,
    interval_for,
)
from agent.market.ratelimit import RateLimiter, parse_retry_after
from agent.market.validation import DEFAULT_MAX_JUMP, is_index_ticker
from agent.market.yahoo import YAHOO_INDEX_SYMBOL
from agent.ops.logs import redact


def brapi_symbol(ticker: str) -> str:
    """brapi uses the bare B3 code (``PETR4``) and ``^BVSP`` for the Ibovespa."""
    t = normalize_ticker(ticker)
    return YAHOO_INDEX_SYMBOL if is_index_ticker(t) else t


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


class BrapiProvider:
    """brapi.dev quotes over plain HTTP (``GET /api/quote/{ticker}?range=..&interval=..``). Source tag: ``brapi``."""

    name = "brapi"

    def __init__(self, token: SecretStr | str | None = None, base_url: str = "https://brapi.dev/api",
                 client: httpx.Client | None = None, min_interval_s: float = 1.0, *,
                 limiter: RateLimiter | None = None, today: Callable[[], date] = b3_today,
                 timeout_s: float = 15.0, max_jump: float = DEFAULT_MAX_JUMP, max_wait_s: float = 60.0):
        if isinstance(token, str):
            token = SecretStr(token)
        self._token: SecretStr | None = token if token is not None and token.get_secret_value() else None
        # the API root (BRAPI_BASE_URL; https://brapi.dev/api in the original guide); the bare site means its /api
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/api") else f"{root}/api"
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
        interval = interval_for(self.name, timeframe)
        choice = choose_period(timeframe, lookback, end, self._today(), allow_custom_days=False)
        body = self._request(symbol, {"range": choice.period, "interval": interval})
        frame, notes = self._to_frame(body, symbol, timeframe)
        if choice.note:
            notes.append(choice.note)
        return finish_bars(self.name, ticker, symbol, timeframe, frame, end, lookback, self.max_jump, notes)

    # -- HTTP

    def _request(self, symbol: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}/quote/{quote(symbol, safe='')}"
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
                            f"{'; '.join(validation_problems(exc, limit=3, show_input=lambda err: False))}") from None
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
        frame.index = b3_local_index(pd.DatetimeIndex(stamps).tz_convert(B3_TZ), timeframe)
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
