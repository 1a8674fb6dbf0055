"""A local SQLite cache of bars under DATABASE_PATH, in front of a live provider.

Repeated runs do not refetch bars the cache already has (when they are fresh enough), and an
offline run replays what is cached: when the live source fails, the cached bars are served and
the report says so. Every row keeps its source, so cached bars stay tagged with where they came from.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Callable

import pandas as pd
from loguru import logger

from agent.errors import DataError
from agent.market.bars import OHLCV, Bars, MarketDataProvider, window_bars
from agent.market.validation import is_index_ticker, validate_bars
from agent.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS bars (
    source    TEXT NOT NULL,
    ticker    TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts        TEXT NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, volume REAL NOT NULL,
    PRIMARY KEY (source, ticker, timeframe, ts)
) WITHOUT ROWID;
"""

OVERLAP_SESSIONS = 3  # refetched on top of the missing bars, in case the source revised them

# (ticker, timeframe, last cached bar) -> True when the cache is recent enough to skip the fetch
Freshness = Callable[[str, str, pd.Timestamp], bool]
# (timeframe, bars) -> only the bars whose period has ended (a live feed's in-progress bar is not a bar yet)
Completed = Callable[[str, pd.DataFrame], pd.DataFrame]


def never_fresh(ticker: str, timeframe: str, last: pd.Timestamp) -> bool:
    return False


def all_bars(timeframe: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame


class BarCache:
    """The ``bars`` table of a SQLite file (WAL), opened through ``agent.store.db`` like every other store."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = Database(self.path)  # SQLite only: the SQL below (INSERT OR REPLACE, WITHOUT ROWID) is SQLite's
        self._lock = threading.Lock()
        self.db.script(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def store(self, source: str, ticker: str, timeframe: str, frame: pd.DataFrame) -> int:
        rows = [(source, ticker, timeframe, pd.Timestamp(ts).isoformat(), *(float(row[c]) for c in OHLCV))
                for ts, row in frame.iterrows()]
        with self._lock, self.db.write("bars") as db:
            db.executemany("INSERT OR REPLACE INTO bars VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def load(self, ticker: str, timeframe: str, source: str | None = None) -> tuple[pd.DataFrame, str | None]:
        """Cached bars (oldest first) and their source; with no source given, the most recent one wins."""
        with self._lock:
            if source is None:
                found = self.db.execute("SELECT source FROM bars WHERE ticker=? AND timeframe=? "
                                        "ORDER BY ts DESC LIMIT 1", (ticker, timeframe)).fetchone()
                if not found:
                    return pd.DataFrame(columns=list(OHLCV)), None
                source = found[0]
            rows = self.db.execute("SELECT ts, open, high, low, close, volume FROM bars "
                                   "WHERE source=? AND ticker=? AND timeframe=? ORDER BY ts",
                                   (source, ticker, timeframe)).fetchall()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["date", *OHLCV])
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date")
        return frame, source


class CachedProvider:
    """Wraps a live provider: fetch, store and serve; serve from the cache when fresh or offline."""

    def __init__(self, inner: MarketDataProvider, cache: BarCache, is_fresh: Freshness = never_fresh,
                 completed: Completed = all_bars):
        self.inner = inner
        self.cache = cache
        self.is_fresh = is_fresh
        self.completed = completed
        self.name = inner.name

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        cached, source = self.cache.load(ticker, timeframe, self.inner.name)
        if len(cached) >= lookback and end is None and self.is_fresh(ticker, timeframe, cached.index[-1]):
            return self._from_cache(ticker, timeframe, cached, end, lookback, "cache is fresh: not refetched")
        # Only the bars the cache lacks: since the last cached bar, plus a small overlap for revisions.
        fetch = lookback
        if len(cached) >= lookback and end is None:
            missing_days = max(len(pd.bdate_range(cached.index[-1], pd.Timestamp.now())), 1)
            per_day = 1 if timeframe in ("1d", "1wk") else max(1, len(cached) // max(cached.index.normalize().nunique(), 1))
            fetch = min(lookback, (missing_days + OVERLAP_SESSIONS) * per_day)
        try:
            bars = self.inner.get_bars(ticker, timeframe, end=end, lookback=fetch)
        except (DataError, OSError) as exc:
            if cached.empty:
                raise
            logger.warning("{} {}: live source {} failed ({}); serving {} cached bars", ticker, timeframe,
                           self.inner.name, exc, len(cached))
            return self._from_cache(ticker, timeframe, cached, end, lookback, f"live source failed ({exc}): served from cache")
        done = self.completed(timeframe, bars.frame)
        if done.empty:
            raise DataError(f"{self.inner.name}: no completed {timeframe} bar for {ticker} yet")
        self.cache.store(bars.source, bars.ticker, timeframe, done)
        if fetch == lookback and len(done) == len(bars.frame):
            return bars
        merged = pd.concat([cached.loc[cached.index < done.index[0]], done])
        return self._from_cache(ticker, timeframe, merged, end, lookback,
                                f"fetched {len(bars)} new bars, the rest from the cache")

    def _from_cache(self, ticker, timeframe, cached, end, lookback, note) -> Bars:
        frame, report = validate_bars(window_bars(cached, end, lookback), is_index=is_index_ticker(ticker))
        if frame.empty:
            raise DataError(f"cache has no {timeframe} bars for {ticker} up to {end}")
        report.notes.append(note)
        return Bars(ticker, timeframe, self.inner.name, frame, report)
