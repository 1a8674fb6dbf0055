"""Simulated bars: seeded synthetic OHLCV for any ticker, so the product runs with no network and no files."""

from __future__ import annotations

import hashlib
import math
from datetime import date, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from agent.config import normalize_ticker
from agent.errors import DataError
from agent.market.bars import Bars, window_bars
from agent.market.calendar import B3_TZ
from agent.market.validation import latest_real_bar, validate_bars


def _ticker_seed(ticker: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{ticker}:{seed}".encode()).digest()[:8], "big")


SIM_INTRADAY_MINUTES = {"1h": 60, "30m": 30, "15m": 15, "5m": 5}
SIM_SESSION_MINUTES = 7 * 60  # 10:00 to 17:00


class SimProvider:
    """Seeded synthetic OHLCV for any ticker, so the product runs with no network.

    The daily series starts on a fixed date and is generated row by row from one seeded stream,
    so the bars up to a date never change when later bars are added (no look-ahead). Intraday
    bars split each simulated day with a Brownian bridge from its open to its close, seeded by
    the day, so they agree with the daily bars and are just as stable.
    """

    name = "sim"
    START = pd.Timestamp("2005-01-03")

    def __init__(self, seed: int = 7, today: date | None = None):
        self.seed = seed
        self.today = today

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        if timeframe != "1d" and timeframe not in SIM_INTRADAY_MINUTES:
            raise DataError(f"sim provider: timeframe {timeframe!r} is not generated "
                            f"(1d, {', '.join(SIM_INTRADAY_MINUTES)})")
        live = end is None and self.today is None
        # live: nothing a real feed could not have yet (today's daily bar only once its session is complete);
        # the series runs through today, so today's intraday bars up to now exist
        now = datetime.now(B3_TZ) if live else None
        last = latest_real_bar(now, "1d") if live else pd.Timestamp(end or self.today)
        full = self._series(ticker, (now.date() if live else last.date()).isoformat())
        if timeframe != "1d":
            per_day = SIM_SESSION_MINUTES // SIM_INTRADAY_MINUTES[timeframe]
            days = full.iloc[-(lookback // per_day + 2):]
            full = pd.concat([self._intraday(ticker, ts, row, timeframe) for ts, row in days.iterrows()])
            if live:
                full = full.loc[full.index <= latest_real_bar(now, timeframe)]
        elif live:
            full = full.loc[full.index <= last]
        raw = window_bars(full, end, lookback)
        if raw.empty:
            raise DataError(f"sim provider: no bars for {ticker} up to {last.date()}")
        frame, report = validate_bars(raw)
        return Bars(ticker, timeframe, self.name, frame, report)

    def _intraday(self, ticker: str, day: pd.Timestamp, daily: pd.Series, timeframe: str) -> pd.DataFrame:
        step = SIM_INTRADAY_MINUTES[timeframe]
        n = SIM_SESSION_MINUTES // step
        rng = np.random.default_rng(_ticker_seed(f"{ticker}:{day.date()}:{timeframe}", self.seed))
        # Brownian bridge of log prices from the day's open to its close.
        walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(n))])
        t = np.linspace(0.0, 1.0, n + 1)
        bridge = walk - t * walk[-1]
        span = math.log(daily["high"] / daily["low"]) / 4.0
        path = np.exp(math.log(daily["open"]) + t * math.log(daily["close"] / daily["open"])
                      + bridge * span / max(np.abs(bridge).max(), 1e-9))
        opens, closes = path[:-1], path[1:]
        wick = np.abs(rng.standard_normal((n, 2))) * span * 0.2
        highs = np.maximum(opens, closes) * np.exp(wick[:, 0])
        lows = np.minimum(opens, closes) * np.exp(-wick[:, 1])
        index = pd.DatetimeIndex([day + pd.Timedelta(hours=10, minutes=i * step) for i in range(n)], name="date")
        volume = np.round(daily["volume"] / n * np.exp(0.3 * rng.standard_normal(n)))
        return pd.DataFrame({"open": opens, "high": highs, "low": lows, "close": closes, "volume": volume}, index=index)

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
