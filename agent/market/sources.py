"""Which market data provider a run uses, built once from config.

``auto`` tries brapi (when BRAPI_TOKEN is set), then yfinance, each behind the SQLite bar cache
and retried with backoff on network errors. If no live source answers and SIMULATION_MODE is on,
it falls back to simulated bars with a loud warning, and every record says ``data_source: "sim"``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import pandas as pd
from loguru import logger

from agent.config import Settings
from agent.errors import ConfigError, DataError, DataSourceUnavailable
from agent.market.bar_cache import BarCache, CachedProvider
from agent.market.bars import Bars, MarketDataProvider
from agent.market.brapi import BrapiProvider
from agent.market.calendar import B3_TZ, default_calendar
from agent.market.csv_files import CsvProvider
from agent.market.sim import SimProvider
from agent.market.yahoo import YFinanceProvider
from agent.ops.metrics import COUNTERS

SOURCES = ("sim", "csv", "auto", "yfinance", "brapi")


def last_complete_session() -> date | None:
    """The last complete B3 session now; None outside the calendar's range."""
    try:
        return default_calendar().last_complete_session(datetime.now(B3_TZ))
    except ValueError:
        return None


def daily_cache_is_fresh(ticker: str, timeframe: str, last: pd.Timestamp) -> bool:
    """Cached daily bars are fresh when they reach the last complete B3 session; intraday never is."""
    done = last_complete_session() if timeframe == "1d" else None
    return done is not None and last.date() >= done


def completed_daily_bars(timeframe: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Drop today's in-progress daily bar (live feeds include it while the session runs)."""
    done = last_complete_session() if timeframe == "1d" and not frame.empty else None
    return frame if done is None else frame.loc[frame.index.normalize() <= pd.Timestamp(done)]


@dataclass
class RetryingProvider:
    """Retries a live provider on network errors and rate limits, with exponential backoff."""

    inner: MarketDataProvider
    attempts: int = 3
    base_delay_s: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    @property
    def name(self) -> str:
        return self.inner.name

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        for attempt in range(1, self.attempts + 1):
            try:
                return self.inner.get_bars(ticker, timeframe, end=end, lookback=lookback)
            except DataSourceUnavailable as exc:
                COUNTERS.inc("market_retries_total", source=self.name)
                if attempt == self.attempts:
                    raise
                delay = max(self.base_delay_s * 2 ** (attempt - 1), getattr(exc, "retry_after", None) or 0.0)
                logger.warning("{} {}: {} (attempt {}/{}), retrying in {:.1f}s", self.name, ticker, exc, attempt,
                               self.attempts, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


@dataclass
class FallbackProvider:
    """Tries each provider in order; the bars say which one answered (``Bars.source``)."""

    providers: list[MarketDataProvider]
    name: str = "auto"

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        failures = []
        for provider in self.providers:
            try:
                bars = provider.get_bars(ticker, timeframe, end=end, lookback=lookback)
            except DataError as exc:
                failures.append(f"{provider.name}: {exc}")
                continue
            if failures:
                COUNTERS.inc("market_fallbacks_total", to=provider.name)
                note = "live sources failed (" + "; ".join(failures) + f"); used {provider.name}"
                if provider.name == "sim":
                    logger.warning("{} {}: {} -- SIMULATED bars, not real prices", ticker, timeframe, note)
                bars.report.notes.append(note)
            return bars
        raise DataError(f"no market data source answered for {ticker} {timeframe}: " + "; ".join(failures))


def _live(settings: Settings, name: str) -> MarketDataProvider:
    m = settings.market
    if name == "brapi":
        live: MarketDataProvider = BrapiProvider(settings.secrets.brapi_token, m.brapi_base_url,
                                                 min_interval_s=m.live_min_interval_s, max_jump=m.max_jump)
    else:
        live = YFinanceProvider(min_interval_s=m.live_min_interval_s, max_jump=m.max_jump)
    return CachedProvider(RetryingProvider(live), BarCache(settings.ledger_path), daily_cache_is_fresh,
                          completed_daily_bars)


def make_market_provider(settings: Settings, source: str | None = None, data_dir: Path | None = None) -> MarketDataProvider:
    """The provider named by ``source`` (or MARKET_SOURCE)."""
    source = source or settings.market.source
    data_dir = data_dir or settings.market.data_dir
    if source == "sim":
        return SimProvider(seed=settings.market.sim_seed)
    if source == "csv":
        if data_dir is None:
            raise ConfigError("market.data_dir (env MARKET_DATA_DIR, flag --data-dir) is required with --source csv")
        return CsvProvider(data_dir, settings.market.max_jump)
    if source in ("yfinance", "brapi"):
        if source == "brapi" and settings.secrets.brapi_token is None:
            raise ConfigError("market.source brapi needs BRAPI_TOKEN (set it in .env)")
        return _live(settings, source)
    if source == "auto":
        chain = ([_live(settings, "brapi")] if settings.secrets.brapi_token else []) + [_live(settings, "yfinance")]
        if settings.simulation_mode:
            chain.append(SimProvider(seed=settings.market.sim_seed))
        return FallbackProvider(chain)
    raise ConfigError(f"market.source (env MARKET_SOURCE): {source!r} is not one of {', '.join(SOURCES)}")
