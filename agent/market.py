"""Market data: a small provider interface and the offline providers (``sim`` and ``csv``).

Bars from any provider are untrusted: ``validate_bars`` drops every row that breaks a
basic rule and reports how many and why, so the reason reaches the decision record.
Live providers (yfinance, brapi) plug into the same ``MarketDataProvider`` protocol.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from agent.config import Settings, normalize_ticker
from agent.errors import ConfigError, DataError

OHLCV = ["open", "high", "low", "close", "volume"]


class BarsReport(BaseModel):
    """What validation did to the raw bars; the data-validation layer reads it."""

    model_config = ConfigDict(extra="forbid")

    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    dropped: dict[str, int] = Field(default_factory=dict)
    first_bar: str | None = None
    last_bar: str | None = None


@dataclass(frozen=True)
class Bars:
    """Validated bars for one ticker and timeframe, oldest first, indexed by timestamp."""

    ticker: str
    timeframe: str
    source: str
    frame: pd.DataFrame
    report: BarsReport = field(default_factory=lambda: BarsReport(rows_in=0, rows_out=0))

    def __len__(self) -> int:
        return len(self.frame)


class MarketDataProvider(Protocol):
    """Anything that returns validated bars up to (and including) ``end``."""

    name: str

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars: ...


def validate_bars(raw: pd.DataFrame) -> tuple[pd.DataFrame, BarsReport]:
    """Sort, de-duplicate and drop broken rows; count every drop by reason."""
    rows_in = len(raw)
    dropped: dict[str, int] = {}

    def drop(mask: pd.Series, reason: str, df: pd.DataFrame) -> pd.DataFrame:
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
            return df.loc[~mask]
        return df

    df = raw[OHLCV].apply(pd.to_numeric, errors="coerce")
    df = df[~df.index.isna()]
    dropped_idx = rows_in - len(df)
    if dropped_idx:
        dropped["bad_timestamp"] = dropped_idx
    if not df.index.is_monotonic_increasing:
        df = df.sort_index(kind="stable")
    df = drop(pd.Series(df.index.duplicated(keep="last"), index=df.index), "duplicate_timestamp", df)
    df = drop(df[["open", "high", "low", "close"]].isna().any(axis=1), "nan_price", df)
    df = drop((df[["open", "high", "low", "close"]] <= 0).any(axis=1), "non_positive_price", df)
    df = drop(df["high"] < df["low"], "high_below_low", df)
    tol = 1e-9
    outside = (df[["open", "close"]].max(axis=1) > df["high"] * (1 + tol)) | (
        df[["open", "close"]].min(axis=1) < df["low"] * (1 - tol))
    df = drop(outside, "open_close_outside_range", df)
    df["volume"] = df["volume"].fillna(0.0)
    df = drop(df["volume"] < 0, "negative_volume", df)
    flat = (df["open"] == df["high"]) & (df["high"] == df["low"]) & (df["low"] == df["close"]) & (df["volume"] == 0)
    df = drop(flat, "flat_zero_volume", df)
    label = lambda ts: pd.Timestamp(ts).isoformat()  # noqa: E731
    report = BarsReport(
        rows_in=rows_in,
        rows_out=len(df),
        dropped=dropped,
        first_bar=label(df.index[0]) if len(df) else None,
        last_bar=label(df.index[-1]) if len(df) else None,
    )
    return df, report


def _window(df: pd.DataFrame, end: date | None, lookback: int) -> pd.DataFrame:
    if end is not None:
        df = df.loc[df.index < pd.Timestamp(end) + pd.Timedelta(days=1)]
    return df.iloc[-lookback:]


def _ticker_seed(ticker: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{ticker}:{seed}".encode()).digest()[:8], "big")


class SimProvider:
    """Seeded synthetic daily OHLCV for any ticker, so the product runs with no network.

    The series starts on a fixed date and is generated row by row from one seeded stream,
    so the bars up to a date never change when later bars are added (no look-ahead).
    """

    name = "sim"
    START = pd.Timestamp("2005-01-03")

    def __init__(self, seed: int = 7, today: date | None = None):
        self.seed = seed
        self.today = today

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        if timeframe != "1d":
            raise DataError(f"sim provider: timeframe {timeframe!r} is not generated (only 1d)")
        last = pd.Timestamp(end or self.today or date.today())
        full = self._series(ticker, last.date().isoformat())
        raw = _window(full, end, lookback)
        if raw.empty:
            raise DataError(f"sim provider: no bars for {ticker} up to {last.date()}")
        frame, report = validate_bars(raw)
        return Bars(ticker, timeframe, self.name, frame, report)

    @lru_cache(maxsize=64)  # noqa: B019 - a handful of tickers per process
    def _series(self, ticker: str, last_day: str) -> pd.DataFrame:
        index = pd.bdate_range(self.START, pd.Timestamp(last_day))
        n = len(index)
        rng = np.random.default_rng(_ticker_seed(ticker, self.seed))
        # One draw of shape (n, 5), row-major: row i never depends on n.
        z = rng.standard_normal((n, 5))
        base = 8.0 + (_ticker_seed(ticker, 0) % 5000) / 100.0
        vol = 0.018 * (1.0 + 0.5 * np.sin(np.arange(n) / 180.0))  # slow volatility regimes
        gap = 0.25 * vol * z[:, 0]
        body = vol * z[:, 1]
        # Log price mean-reverts slowly to the ticker's base level (half-life about a year),
        # so twenty years of history stay at realistic B3 price levels.
        kappa, log_base = 0.003, math.log(base)
        opens = np.empty(n)
        closes = np.empty(n)
        log_prev = log_base
        for i in range(n):
            log_open = log_prev + kappa * (log_base - log_prev) + gap[i]
            opens[i] = math.exp(log_open)
            log_prev = log_open + body[i]
            closes[i] = math.exp(log_prev)
        wick = vol * 0.5
        highs = np.maximum(opens, closes) * np.exp(np.abs(z[:, 2]) * wick)
        lows = np.minimum(opens, closes) * np.exp(-np.abs(z[:, 3]) * wick)
        volume = np.round(np.exp(15.5 + 0.35 * z[:, 4]))
        return pd.DataFrame(
            {"open": opens, "high": highs, "low": lows, "close": closes, "volume": volume},
            index=index.rename("date"),
        )


class CsvProvider:
    """Per-ticker daily CSVs in the Yahoo layout (``Date,Open,High,Low,Close,Volume``, any column order).

    Files are looked up as ``<TICKER>.SA.csv`` or ``<TICKER>.csv`` in ``data_dir``.
    """

    name = "csv"

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise ConfigError(f"market.data_dir (env MARKET_DATA_DIR): {self.data_dir} is not a directory")

    def path_for(self, ticker: str) -> Path | None:
        t = normalize_ticker(ticker)
        for name in (f"{t}.SA.csv", f"{t}.csv", f"{t.lstrip('^')}.csv"):
            p = self.data_dir / name
            if p.is_file():
                return p
        return None

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        if timeframe != "1d":
            raise DataError(f"csv provider: timeframe {timeframe!r} is not supported (only 1d)")
        path = self.path_for(ticker)
        if path is None:
            raise DataError(f"csv provider: no file for {ticker} in {self.data_dir} (expected {ticker}.SA.csv)")
        full, report = _load_csv(str(path), path.stat().st_mtime_ns)
        frame = _window(full, end, lookback)
        if frame.empty:
            raise DataError(f"csv provider: {path.name} has no valid bars up to {end}")
        return Bars(ticker, timeframe, self.name, frame, report)


@lru_cache(maxsize=32)
def _load_csv(path: str, _mtime_ns: int) -> tuple[pd.DataFrame, BarsReport]:
    """Parse and validate one file (cached per path and modification time)."""
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"csv provider: cannot read {path}: {exc}") from exc
    raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
    if "price" in raw.columns and "date" not in raw.columns:  # yfinance multi-line header
        raw = raw.rename(columns={"price": "date"})
    missing = [c for c in ["date", *OHLCV] if c not in raw.columns]
    if missing:
        raise DataError(f"csv provider: {path} lacks column(s) {missing}; expected Date,Open,High,Low,Close,Volume")
    dates = pd.to_datetime(raw["date"], errors="coerce", format="mixed")
    raw = raw.set_index(pd.DatetimeIndex(dates, name="date"))
    if raw.index.tz is not None:
        raw.index = raw.index.tz_localize(None)
    frame, report = validate_bars(raw)
    if report.dropped:
        logger.debug("{}: dropped {} while validating", Path(path).name, report.dropped)
    return frame, report


def make_market_provider(settings: Settings, source: str | None = None, data_dir: Path | None = None) -> MarketDataProvider:
    """The provider named by ``source`` (or config). ``auto`` uses csv when a data dir is set, else sim."""
    source = source or settings.market.source
    data_dir = data_dir or settings.market.data_dir
    if source == "sim":
        return SimProvider(seed=settings.market.sim_seed)
    if source == "csv":
        if data_dir is None:
            raise ConfigError("market.data_dir (env MARKET_DATA_DIR, flag --data-dir) is required with --source csv")
        return CsvProvider(data_dir)
    if source == "auto":
        if data_dir is not None and Path(data_dir).is_dir():
            return CsvProvider(data_dir)
        logger.warning("market source auto: no live provider is available and no data dir is set; "
                       "using SIMULATED bars (records are tagged data_source=sim)")
        return SimProvider(seed=settings.market.sim_seed)
    raise ConfigError(f"market.source (env MARKET_SOURCE): {source!r} is not one of sim, csv, auto")
