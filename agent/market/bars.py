"""Bars: what every market data provider returns, and the interface they share.

A provider (sim, csv, yfinance, brapi, or a wrapper such as the bar cache) answers ``get_bars`` with
validated bars; the report of that validation travels with them, so the reason a row was dropped
reaches the decision record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

# The columns of every bar frame, in this order. Index it with ``list(OHLCV)``: pandas reads a tuple as one key.
OHLCV = ("open", "high", "low", "close", "volume")


class BarsReport(BaseModel):
    """What validation did to the raw bars; the data-validation layer reads it."""

    model_config = ConfigDict(extra="forbid")

    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    dropped: dict[str, int] = Field(default_factory=dict)
    repaired: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
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


def bars_until(df: pd.DataFrame, end: date | str | None) -> pd.DataFrame:
    """The bars stamped on or before the day ``end`` (all of them when ``end`` is None)."""
    if end is None:
        return df
    return df.loc[df.index < pd.Timestamp(end) + pd.Timedelta(days=1)]


def window_bars(df: pd.DataFrame, end: date | None, lookback: int) -> pd.DataFrame:
    """The last ``lookback`` bars up to the day ``end``."""
    return bars_until(df, end).iloc[-lookback:]
