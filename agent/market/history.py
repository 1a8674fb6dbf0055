"""What a live provider asks for, and how its answer becomes ``Bars``: shared by yfinance and brapi.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from agent.errors import DataError
from agent.market.bars import Bars, bars_until
from agent.market.calendar import B3_TZ
from agent.market.validation import is_index_ticker, validate_bars

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


def interval_for(provider: str, timeframe: str) -> str:
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


def b3_today() -> date:
    """Today in B3 local time: how far back ``end`` lies decides the period asked for."""
    return datetime.now(B3_TZ).date()


def finish_bars(provider: str, ticker: str, symbol: str, timeframe: str, frame: pd.DataFrame, end: date | None,
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


def b3_local_index(index: pd.Index, timeframe: str, assume_tz: str | None = None) -> pd.DatetimeIndex:
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
