"""Bar validation: bars from any provider are untrusted until ``validate_bars`` has seen them.

It drops every row that breaks a basic rule (or repairs a rounding slip) and counts each change by
reason in a ``BarsReport``, so the data-validation layer and the decision record can say why.
``without_future_bars`` does the same, at decision time, for bars stamped after now.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from loguru import logger

from agent.market.bars import OHLCV, Bars, BarsReport, MarketDataProvider
from agent.market.calendar import B3_TZ, default_calendar
from agent.ops.metrics import COUNTERS

# A daily close-to-close move larger than this is treated as a split or broken data.
DEFAULT_MAX_JUMP = 0.40
# How far open/close may sit outside [low, high] before a row is dropped instead of repaired.
REPAIR_TOLERANCE = 0.005
# Regular B3 cash session hours (local time): bars opening outside them are after-hours prints.
SESSION_FIRST_BAR, SESSION_END = "10:00", "18:00"
# The rules of ``validate_bars`` that judge one row alone, in the order it applies them: a row counts
# under the first one it breaks.
ROW_RULES = ("nan_price", "non_positive_price", "high_below_low", "open_close_outside_range", "negative_volume",
             "flat_zero_volume")
INDEX_TICKERS = frozenset({"IBOV", "BVSP", "^BVSP"})


def is_index_ticker(ticker: str) -> bool:
    """Whether ``ticker`` is the Ibovespa: an index has no meaningful volume (``validate_bars(is_index=...)``)."""
    return ticker.upper() in INDEX_TICKERS


def validate_bars(raw: pd.DataFrame, *, is_index: bool = False, max_jump: float = DEFAULT_MAX_JUMP) -> tuple[pd.DataFrame, BarsReport]:
    """Sort, de-duplicate, repair or drop broken rows; count every change by reason.

    ``is_index``: an index (IBOV) has no meaningful volume, so zero volume is not a defect.
    """
    rows_in = len(raw)
    dropped: dict[str, int] = {}
    repaired: dict[str, int] = {}
    notes: list[str] = []

    def drop(mask: pd.Series, reason: str, df: pd.DataFrame) -> pd.DataFrame:
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
            return df.loc[~mask]
        return df

    df = raw[list(OHLCV)].apply(pd.to_numeric, errors="coerce")
    df = df[~df.index.isna()]
    if rows_in - len(df):
        dropped["bad_timestamp"] = rows_in - len(df)
    if not df.index.is_monotonic_increasing:
        df = df.sort_index(kind="stable")
    df = drop(pd.Series(df.index.duplicated(keep="last"), index=df.index), "duplicate_timestamp", df)
    prices = ["open", "high", "low", "close"]
    df = drop(df[prices].isna().any(axis=1), "nan_price", df)
    df = drop((df[prices] <= 0).any(axis=1), "non_positive_price", df)
    df = drop(df["high"] < df["low"], "high_below_low", df)
    body_hi, body_lo = df[["open", "close"]].max(axis=1), df[["open", "close"]].min(axis=1)
    outside = (body_hi > df["high"]) | (body_lo < df["low"])
    far = (body_hi > df["high"] * (1 + REPAIR_TOLERANCE)) | (body_lo < df["low"] * (1 - REPAIR_TOLERANCE))
    df = drop(far, "open_close_outside_range", df)
    near = outside & ~far
    if near.any():  # rounding in the source: widen the range to include open and close
        near = near.loc[df.index]
        df.loc[near, "high"] = df.loc[near, ["high", "open", "close"]].max(axis=1)
        df.loc[near, "low"] = df.loc[near, ["low", "open", "close"]].min(axis=1)
        repaired["range_widened_to_open_close"] = int(near.sum())
    df["volume"] = df["volume"].fillna(0.0)
    df = drop(df["volume"] < 0, "negative_volume", df)
    flat = (df["open"] == df["high"]) & (df["high"] == df["low"]) & (df["low"] == df["close"]) & (df["volume"] == 0)
    df = drop(flat, "flat_zero_volume", df)  # pre-2018 holidays in Yahoo's B3 files
    intraday = len(df) > 0 and bool((df.index != df.index.normalize()).any())
    if intraday:
        df = drop(outside_regular_session(df.index), "after_hours", df)
    elif len(df) > 1:  # on the prices as given: dropping untraded rows first could hide a split
        change = df["close"].pct_change()
        jumps = change[change.abs() > max_jump]
        if not jumps.empty:  # keep only the bars after the last split-like jump
            cut = jumps.index[-1]
            before = df.index < cut
            notes.append(f"close moved {change.loc[cut]:+.0%} on {cut.date()} (split or broken "
                         f"data, threshold {max_jump:.0%}): the {int(before.sum())} bars before it were dropped")
            df = drop(pd.Series(before, index=df.index), "before_price_jump", df)
    if not is_index:
        df = drop(df["volume"] == 0, "zero_volume", df)  # no trade: the price is a stale carry-over
    label = lambda ts: pd.Timestamp(ts).isoformat()  # noqa: E731
    report = BarsReport(
        rows_in=rows_in,
        rows_out=len(df),
        dropped=dropped,
        repaired=repaired,
        notes=notes,
        first_bar=label(df.index[0]) if len(df) else None,
        last_bar=label(df.index[-1]) if len(df) else None,
    )
    return df, report


def outside_regular_session(index: pd.DatetimeIndex) -> pd.Series:
    """True for intraday bars that open before the session opens or at/after it closes (B3 local time).

    The close moves with US daylight saving time (17:00 or 18:00), so the calendar decides; for
    days it does not cover, the widest regular session (10:00 to 18:00) is used.
    """
    cal = default_calendar()
    bounds: dict = {}
    outside = []
    for ts in index:
        day = ts.date()
        if day not in bounds:
            try:
                if not cal.is_session(day):
                    bounds[day] = None
                else:
                    bounds[day] = (cal.session_open(day).strftime("%H:%M"), cal.session_close(day).strftime("%H:%M"))
            except ValueError:
                bounds[day] = (SESSION_FIRST_BAR, SESSION_END)
        b = bounds[day]
        clock = ts.strftime("%H:%M")
        outside.append(b is None or clock < b[0] or clock >= b[1])
    return pd.Series(outside, index=index)


def latest_real_bar(now: datetime, timeframe: str) -> pd.Timestamp:
    """The newest stamp a finished (or, intraday, started) bar can carry at ``now`` (B3 local time): for daily
    bars the last complete session, so today's bar is not taken as final while its session runs; intraday,
    now itself."""
    local = now.astimezone(B3_TZ)
    if timeframe != "1d":
        return pd.Timestamp(local.replace(tzinfo=None))
    try:
        day = default_calendar().last_complete_session(local)
    except ValueError:  # beyond the calendar's range: the calendar day is the bound
        day = local.date()
    return pd.Timestamp(day)


def without_future_bars(market: MarketDataProvider, bars: Bars, now: datetime, lookback: int) -> Bars:
    """``bars`` without any bar stamped after ``latest_real_bar(now)`` (a shifted file, a mistyped year, a
    wrong clock): dropped and counted in the report as ``future_dated``, the window fetched again up to
    the bound so it keeps its length. The same object when no bar is in the future."""
    limit = latest_real_bar(now, bars.timeframe)

    def future(frame: pd.DataFrame) -> np.ndarray:
        index = frame.index.tz_localize(None) if getattr(frame.index, "tz", None) is not None else frame.index
        return np.asarray((index.normalize() if bars.timeframe == "1d" else index) > limit)

    ahead = future(bars.frame)
    if not ahead.any():
        return bars
    again = market.get_bars(bars.ticker, bars.timeframe, end=limit.date(), lookback=lookback)
    frame = again.frame.loc[~future(again.frame)]
    n = int(ahead.sum())
    newest = pd.Timestamp(bars.frame.index[-1])
    local = now.astimezone(B3_TZ)
    # a daily bar for today while its session runs (or before it closes) is unfinished, not a wrong date
    unfinished = bars.timeframe == "1d" and n == 1 and newest.date() == local.date()
    reason = "unfinished_session" if unfinished else "future_dated"
    COUNTERS.inc("bars_dropped_total", n, reason=reason)
    bound = limit.date().isoformat() if bars.timeframe == "1d" else limit.isoformat(timespec="minutes")
    why = ("today's session is not complete: its daily bar is still forming" if unfinished
           else "a shifted file or a wrong clock")
    report = again.report.model_copy(update={
        "rows_out": len(frame), "dropped": {**again.report.dropped, reason: n},
        "notes": [*again.report.notes, f"{n} bar(s) dated after {bound}, the newest a real bar can be at "
                  f"{local:%Y-%m-%d %H:%M} B3 time, were dropped: {why}"],
        "last_bar": pd.Timestamp(frame.index[-1]).isoformat() if len(frame) else None})
    (logger.info if unfinished else logger.warning)("{} {}: dropped {} bar(s) dated after {}, the newest {} ({})",
                                                    bars.ticker, bars.timeframe, n, bound, newest.isoformat(), why)
    return Bars(bars.ticker, bars.timeframe, again.source, frame, report)
