"""Market data: a small provider interface and the offline providers (``sim`` and ``csv``).

Bars from any provider are untrusted: ``validate_bars`` drops every row that breaks a
basic rule and reports how many and why, so the reason reaches the decision record.
Live providers (yfinance, brapi) plug into the same ``MarketDataProvider`` protocol.
"""

from __future__ import annotations

import hashlib
import math
import os
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


# A daily close-to-close move larger than this is treated as a split or broken data.
DEFAULT_MAX_JUMP = 0.40
# How far open/close may sit outside [low, high] before a row is dropped instead of repaired.
REPAIR_TOLERANCE = 0.005
# Regular B3 cash session hours (local time): bars opening outside them are after-hours prints.
SESSION_FIRST_BAR, SESSION_END = "10:00", "18:00"


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

    df = raw[OHLCV].apply(pd.to_numeric, errors="coerce")
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


# The rules of ``validate_bars`` that judge one row alone, in the order it applies them: a row counts
# under the first one it breaks.
ROW_RULES = ("nan_price", "non_positive_price", "high_below_low", "open_close_outside_range", "negative_volume",
             "flat_zero_volume")


class ValidatedCuts:
    """``validate_bars`` of every cut of one daily file (its last ``tail`` raw rows up to a day), from one pass.

    A backtest validates a new cut every day, and each cut repeats almost all of the previous one. No rule
    of ``validate_bars`` looks at a later row: most judge one row alone, and the split-like jump compares a
    row with the valid row before it. So each verdict is taken once over the whole file, and a cut only
    counts the verdicts of its own rows (prefix sums): the answer for day t reads rows up to t and nothing
    else, exactly as validating the cut does. tests/test_market.py checks frames and reports against
    ``validate_bars`` on cuts of every real file and of generated broken ones.

    ``cut`` returns None for what this does not cover (unsorted, duplicate, missing or intraday timestamps,
    prices that are not floats); the caller then validates the cut itself.
    """

    def __init__(self, raw: pd.DataFrame, *, is_index: bool, max_jump: float):
        index = raw.index
        self.covered = (isinstance(index, pd.DatetimeIndex) and index.tz is None and not index.hasnans
                        and index.is_monotonic_increasing and index.is_unique and len(index) > 0
                        and all(raw[c].dtype == np.float64 for c in OHLCV[:4]) and raw["volume"].dtype.kind in "iuf"
                        and bool((index == index.normalize()).all()))
        if not self.covered:
            return
        self.index, self.max_jump = index, max_jump
        fixed = raw[OHLCV].copy()
        o, h, l, c = (fixed[col].to_numpy() for col in ("open", "high", "low", "close"))  # noqa: E741
        rule = np.zeros(len(fixed), dtype=np.int8)  # 0: kept; k: dropped by ROW_RULES[k - 1]

        def judge(mask: np.ndarray, k: int) -> None:
            rule[(rule == 0) & mask] = k

        with np.errstate(invalid="ignore"):
            judge(np.isnan(o) | np.isnan(h) | np.isnan(l) | np.isnan(c), 1)
            judge((o <= 0) | (h <= 0) | (l <= 0) | (c <= 0), 2)
            judge(h < l, 3)
            body_hi, body_lo = np.maximum(o, c), np.minimum(o, c)
            far = (body_hi > h * (1 + REPAIR_TOLERANCE)) | (body_lo < l * (1 - REPAIR_TOLERANCE))
            judge(far, 4)
            near = ((body_hi > h) | (body_lo < l)) & (rule == 0)
        if near.any():  # the same repair as validate_bars, on the same rows
            fixed.loc[near, "high"] = fixed.loc[near, ["high", "open", "close"]].max(axis=1)
            fixed.loc[near, "low"] = fixed.loc[near, ["low", "open", "close"]].min(axis=1)
        fixed["volume"] = fixed["volume"].fillna(0.0)
        h, l, v = fixed["high"].to_numpy(), fixed["low"].to_numpy(), fixed["volume"].to_numpy()  # noqa: E741
        judge(v < 0, 5)
        judge((o == h) & (h == l) & (l == c) & (v == 0), 6)
        self.rule_counts = np.zeros((len(ROW_RULES) + 1, len(fixed) + 1), dtype=np.int64)
        self.rule_counts[:, 1:] = np.cumsum(rule[None, :] == np.arange(len(ROW_RULES) + 1)[:, None], axis=1)
        self.near_counts = np.concatenate([[0], np.cumsum(near)])
        # The rows every row rule keeps, and the close-to-close move of each from the kept row before it.
        self.kept = np.flatnonzero(rule == 0)
        closes = c[self.kept]
        self.change = np.concatenate([[np.nan], closes[1:] / closes[:-1] - 1])
        self.jumps = np.flatnonzero(np.abs(self.change) > max_jump)  # positions in ``kept``
        zero = v[self.kept] == 0 if not is_index else np.zeros(len(self.kept), dtype=bool)
        self.zero_counts = np.concatenate([[0], np.cumsum(zero)])
        self.final = np.flatnonzero(~zero)  # positions in ``kept`` of the rows no rule drops
        self.frame = fixed.iloc[self.kept[self.final]]

    def cut(self, end: str | None, tail: int) -> tuple[pd.DataFrame, BarsReport] | None:
        """``validate_bars`` of ``bars_until(raw, end).iloc[-tail:]``, or None when it must be run instead."""
        if not self.covered or tail <= 0:
            return None
        b = len(self.index) if end is None else int(self.index.searchsorted(pd.Timestamp(end) + pd.Timedelta(days=1)))
        a = max(b - tail, 0)
        if a == b:
            return None
        dropped = {name: int(self.rule_counts[k, b] - self.rule_counts[k, a])
                   for k, name in enumerate(ROW_RULES, start=1) if self.rule_counts[k, b] > self.rule_counts[k, a]}
        near = int(self.near_counts[b] - self.near_counts[a])
        first, stop = np.searchsorted(self.kept, [a, b])  # the cut's rows in ``kept``: [first, stop)
        notes = []
        j = int(np.searchsorted(self.jumps, stop)) - 1
        if j >= 0 and self.jumps[j] > first:  # the first kept row of a cut has no move of its own
            jump = int(self.jumps[j])
            when = self.index[self.kept[jump]]
            notes.append(f"close moved {self.change[jump]:+.0%} on {when.date()} (split or broken "
                         f"data, threshold {self.max_jump:.0%}): the {jump - first} bars before it were dropped")
            dropped["before_price_jump"] = jump - first
            first = jump
        zero = int(self.zero_counts[stop] - self.zero_counts[first])
        if zero:
            dropped["zero_volume"] = zero
        lo, hi = np.searchsorted(self.final, [first, stop])
        frame = self.frame.iloc[lo:hi]
        label = lambda ts: pd.Timestamp(ts).isoformat()  # noqa: E731
        return frame, BarsReport(rows_in=b - a, rows_out=len(frame), dropped=dropped,
                                 repaired={"range_widened_to_open_close": near} if near else {}, notes=notes,
                                 first_bar=label(frame.index[0]) if len(frame) else None,
                                 last_bar=label(frame.index[-1]) if len(frame) else None)


def outside_regular_session(index: pd.DatetimeIndex) -> pd.Series:
    """True for intraday bars that open before the session opens or at/after it closes (B3 local time).

    The close moves with US daylight saving time (17:00 or 18:00), so the calendar decides; for
    days it does not cover, the widest regular session (10:00 to 18:00) is used.
    """
    from agent.market.calendar import default_calendar

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


def bars_until(df: pd.DataFrame, end: date | str | None) -> pd.DataFrame:
    """The bars stamped on or before the day ``end`` (all of them when ``end`` is None)."""
    if end is None:
        return df
    return df.loc[df.index < pd.Timestamp(end) + pd.Timedelta(days=1)]


def window_bars(df: pd.DataFrame, end: date | None, lookback: int) -> pd.DataFrame:
    return bars_until(df, end).iloc[-lookback:]


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
        last = pd.Timestamp(end or self.today or date.today())
        full = self._series(ticker, last.date().isoformat())
        if timeframe != "1d":
            per_day = SIM_SESSION_MINUTES // SIM_INTRADAY_MINUTES[timeframe]
            days = full.iloc[-(lookback // per_day + 2):]
            full = pd.concat([self._intraday(ticker, ts, row, timeframe) for ts, row in days.iterrows()])
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


INTRADAY_FILE_SUFFIX = {"1h": "60min", "30m": "30min", "15m": "15min", "5m": "5min", "1m": "1min"}
INDEX_TICKERS = frozenset({"IBOV", "BVSP", "^BVSP"})
PROFITCHART_COLUMNS = ["symbol", "day", "time", "open", "high", "low", "close", "fin_volume", "volume"]


def is_index_ticker(ticker: str) -> bool:
    return ticker.upper() in INDEX_TICKERS


class CsvProvider:
    """Per-ticker CSV files, in any of the layouts B3 users actually have:

    - Yahoo daily: ``Date,Open,High,Low,Close,Volume`` in any column order (``<TICKER>.SA.csv``);
    - Yahoo with ``Adj Close``: prices are rescaled by Adj Close / Close (dividend-adjusted);
    - yfinance's multi-line header (``Price,...`` / ``Ticker,...`` / ``Date,...``, as in BVSP.csv);
    - ProfitChart exports (``<TICKER>_B_0_60min.csv``): no header, ``;``-separated, decimal comma,
      newest bar first, ``symbol;dd/mm/yyyy;HH:MM:SS;open;high;low;close;financial volume;quantity``.

    Files are looked for in ``data_dir`` and in its ``daily/`` and ``intraday/`` sub-folders.
    """

    name = "csv"

    def __init__(self, data_dir: Path, max_jump: float = DEFAULT_MAX_JUMP):
        self.data_dir = Path(data_dir)
        self.max_jump = max_jump
        if not self.data_dir.is_dir():
            raise ConfigError(f"market.data_dir (env MARKET_DATA_DIR): {self.data_dir} is not a directory")

    def path_for(self, ticker: str, timeframe: str = "1d") -> Path | None:
        t = normalize_ticker(ticker)
        if timeframe == "1d":
            names = [f"{t}.SA.csv", f"{t}.csv", f"{t.lstrip('^')}.csv"]
            if t in ("IBOV", "^BVSP"):
                names.append("BVSP.csv")
        elif timeframe in INTRADAY_FILE_SUFFIX:
            alias = "IBOV" if t in ("BVSP", "^BVSP") else t
            names = [f"{alias}_B_0_{INTRADAY_FILE_SUFFIX[timeframe]}.csv", f"{alias}_{timeframe}.csv"]
        else:
            return None
        base = str(self.data_dir)  # plain strings: pathlib's joins cost more than the stats (a backtest asks often)
        for folder in (base, os.path.join(base, "daily"), os.path.join(base, "intraday")):
            for name in names:
                if os.path.isfile(candidate := os.path.join(folder, name)):
                    return Path(candidate)
        return None

    def get_bars(self, ticker: str, timeframe: str = "1d", end: date | None = None, lookback: int = 300) -> Bars:
        ticker = normalize_ticker(ticker)
        path = self.path_for(ticker, timeframe)
        if path is None:
            raise DataError(f"csv provider: no {timeframe} file for {ticker} in {self.data_dir} "
                            f"(expected {ticker}.SA.csv for 1d, {ticker}_B_0_60min.csv for 1h)")
        # Cut at ``end`` before validating: no statistic or split cut may come from later bars. Only the
        # raw rows the window can use are validated (twice the lookback, for the rows validation drops).
        full, report = _validated_csv(str(path), path.stat().st_mtime_ns, is_index_ticker(ticker), self.max_jump,
                                      end.isoformat() if end else None, 2 * lookback + 50)
        frame = window_bars(full, None, lookback)
        if frame.empty:
            raise DataError(f"csv provider: {path.name} has no valid bars up to {end}")
        return Bars(ticker, timeframe, self.name, frame, report)


def _read_profitchart(path: str) -> pd.DataFrame:
    raw = pd.read_csv(path, sep=";", header=None, decimal=",", names=PROFITCHART_COLUMNS, dtype={"time": str})
    stamps = pd.to_datetime(raw["day"].astype(str) + " " + raw["time"].astype(str), format="%d/%m/%Y %H:%M:%S",
                            errors="coerce")
    return raw.set_index(pd.DatetimeIndex(stamps, name="date"))


def _read_yahoo(path: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
    if "price" in raw.columns and "date" not in raw.columns:  # yfinance multi-line header
        raw = raw.rename(columns={"price": "date"})
    missing = [c for c in ["date", *OHLCV] if c not in raw.columns]
    if missing:
        raise DataError(f"csv provider: {path} lacks column(s) {missing}; expected Date,Open,High,Low,Close,Volume")
    # Keep the local wall time: yfinance writes offsets that change with Brazil's old DST (-02:00/-03:00).
    local = raw["date"].astype(str).str.replace(r"(?:[+-]\d{2}:?\d{2}|Z)$", "", regex=True)
    raw = raw.set_index(pd.DatetimeIndex(pd.to_datetime(local, errors="coerce", format="mixed"), name="date"))
    if "adj_close" in raw.columns:
        close = pd.to_numeric(raw["close"], errors="coerce")
        factor = pd.to_numeric(raw["adj_close"], errors="coerce") / close.where(close > 0)
        for col in ("open", "high", "low", "close"):
            raw[col] = pd.to_numeric(raw[col], errors="coerce") * factor
    return raw


@lru_cache(maxsize=64)
def _parse_csv(path: str, _mtime_ns: int) -> pd.DataFrame:
    """Parse one file in whichever layout it has (cached per path and modification time)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        return _read_profitchart(path) if first.count(";") >= 6 else _read_yahoo(path)
    except (OSError, ValueError, TypeError, pd.errors.ParserError) as exc:
        raise DataError(f"csv provider: cannot read {path}: {exc}") from exc


@lru_cache(maxsize=64)
def _csv_cuts(path: str, mtime_ns: int, is_index: bool, max_jump: float) -> ValidatedCuts:
    """Every row of the file judged once (cached per path and modification time)."""
    return ValidatedCuts(_parse_csv(path, mtime_ns), is_index=is_index, max_jump=max_jump)


@lru_cache(maxsize=512)
def _validated_csv(path: str, mtime_ns: int, is_index: bool, max_jump: float,
                   end: str | None, tail: int) -> tuple[pd.DataFrame, BarsReport]:
    """The last ``tail`` raw rows of the file up to ``end``, validated (cached per cut)."""
    cut = _csv_cuts(path, mtime_ns, is_index, max_jump).cut(end, tail)
    if cut is None:
        raw = bars_until(_parse_csv(path, mtime_ns), end).iloc[-tail:]
        try:
            cut = validate_bars(raw, is_index=is_index, max_jump=max_jump)
        except (ValueError, TypeError) as exc:
            raise DataError(f"csv provider: cannot validate {path}: {exc}") from exc
    frame, report = cut
    if report.dropped or report.notes:
        logger.debug("{}: dropped {} {}", Path(path).name, report.dropped, " ".join(report.notes))
    return frame, report
