"""The baselines every backtest report carries: buy-and-hold of each ticker and of the Ibovespa, and the risk-free rate.

The quant-mode baseline is a second walk-forward run (agent.backtest.run); these are the curves and
rates that need no graph at all.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from agent.config import Settings
from agent.errors import ConfigError, DataError

IBOV = "^BVSP"
ALL_BARS = 1_000_000  # lookback that means "the whole file"


def buy_and_hold(close: pd.Series, capital: float) -> pd.Series:
    """Capital invested at the first close of the window and held (no costs): the simplest baseline."""
    close = close.astype(float)
    return capital * close / float(close.iloc[0])


def ibovespa(market, start: date, end: date) -> tuple[pd.Series | None, str | None]:
    try:
        frame = market.get_bars(IBOV, "1d", end=end, lookback=ALL_BARS).frame
    except (DataError, ValueError, OSError) as exc:
        return None, f"Ibovespa baseline unavailable from source {getattr(market, 'name', '?')}: {exc}"
    close = frame.loc[(frame.index >= pd.Timestamp(start)), "close"]
    return (close, None) if len(close) else (None, f"no Ibovespa bars between {start} and {end}")


def risk_free(settings: Settings) -> float | pd.Series:
    """The CDI/Selic series from backtest.risk_free_file (date, annual rate), else risk.risk_free_rate."""
    path = settings.backtest.risk_free_file
    if path is None:
        return settings.risk.risk_free_rate
    try:
        raw = pd.read_csv(path)
        series = pd.Series(pd.to_numeric(raw.iloc[:, 1], errors="raise").values,
                           index=pd.DatetimeIndex(pd.to_datetime(raw.iloc[:, 0], errors="raise")))
    except (OSError, ValueError, IndexError) as exc:
        raise ConfigError(f"backtest.risk_free_file {path}: expected a CSV of date,annual_rate: {exc}") from exc
    if series.empty or (series.abs() > 1).any():
        raise ConfigError(f"backtest.risk_free_file {path}: rates must be annual fractions (0.1075 for 10.75%)")
    return series.sort_index()
