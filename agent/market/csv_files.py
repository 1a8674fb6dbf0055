"""CSV files of bars: the provider that reads them, and the validation of every cut of a file in one pass.

A backtest asks a file for its bars up to each day in turn; ``ValidatedCuts`` answers each of those
cuts exactly as ``validate_bars`` would, without validating the file again every day.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from agent.config import normalize_ticker
from agent.errors import ConfigError, DataError
from agent.market.bars import OHLCV, Bars, BarsReport, bars_until, window_bars
from agent.market.validation import (
    DEFAULT_MAX_JUMP,
    REPAIR_TOLERANCE,
    ROW_RULES,
    is_index_ticker,
    validate_bars,
)


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
        fixed = raw[list(OHLCV)].copy()
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


INTRADAY_FILE_SUFFIX = {"1h": "60min", "30m": "30min", "15m": "15min", "5m": "5min", "1m": "1min"}
PROFITCHART_COLUMNS = ["symbol", "day", "time", "open", "high", "low", "close", "fin_volume", "volume"]


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
    return raw.set_index(pd.DatetimeIndex(stamps, name="date")).iloc[::-1]  # the layout is newest first


# A date with the year last (``30/06/2025``, ``06-30-2025``): which of its first two fields is the day?
YEAR_LAST = r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})"


def _year_last_to_iso(dates: pd.Series, path: str) -> tuple[pd.Series, str | None]:
    """Year-last dates rewritten as ISO, and a note saying which order they were read in.

    A pt-BR spreadsheet writes the day first, a US one the month first: the order is the one no date
    contradicts (a first field above 12 is a day). A file where both orders fit every date, or neither
    does, is refused naming the file: guessing would scramble the series without a word.
    """
    parts = dates.str.extract(YEAR_LAST).dropna().astype(int)
    if parts.empty:
        return dates, None
    day_first, month_first = bool((parts[1] <= 12).all()), bool((parts[0] <= 12).all())
    if day_first == month_first:
        why = "either order fits every date" if day_first else "neither order fits every date"
        raise DataError(f"csv provider: {path}: cannot tell day from month in dates like {dates.iloc[0]!r} "
                        f"({why}); write them as YYYY-MM-DD")
    day, month = (r"\1", r"\2") if day_first else (r"\2", r"\1")
    iso = dates.str.replace(YEAR_LAST, rf"\3-{month}-{day}", regex=True)
    iso = iso.str.replace(r"^(\d{4})-(\d)-", r"\1-0\2-", regex=True).str.replace(r"^(\d{4}-\d\d)-(\d)\b", r"\1-0\2",
                                                                              regex=True)
    return iso, "dates read day first (dd/mm/yyyy)" if day_first else "dates read month first (mm/dd/yyyy)"


def _read_yahoo(path: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    raw.columns = [str(c).strip().lower().replace(" ", "_") for c in raw.columns]
    if "price" in raw.columns and "date" not in raw.columns:  # yfinance multi-line header
        raw = raw.rename(columns={"price": "date"})
    missing = [c for c in ["date", *OHLCV] if c not in raw.columns]
    if missing:
        raise DataError(f"csv provider: {path} lacks column(s) {missing}; expected Date,Open,High,Low,Close,Volume")
    # Keep the local wall time: yfinance writes offsets that change with Brazil's old DST (-02:00/-03:00).
    local = raw["date"].astype(str).str.strip().str.replace(r"(?:[+-]\d{2}:?\d{2}|Z)$", "", regex=True)
    local, order = _year_last_to_iso(local, path)
    raw = raw.set_index(pd.DatetimeIndex(pd.to_datetime(local, errors="coerce", format="mixed"), name="date"))
    if order:
        raw.attrs["notes"] = [order]
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
        raw = _read_profitchart(path) if first.count(";") >= 6 else _read_yahoo(path)
    except (OSError, ValueError, TypeError, pd.errors.ParserError) as exc:
        raise DataError(f"csv provider: cannot read {path}: {exc}") from exc
    notes = raw.attrs.get("notes", [])
    if not raw.index.is_monotonic_increasing:
        # Sorted before anything cuts the file: the last rows of a newest-first file are its oldest ones.
        order = np.argsort(raw.index.to_numpy(), kind="stable")
        moved = int((order != np.arange(len(order))).sum())
        raw = raw.iloc[order]
        raw.attrs["reordered"] = moved
        notes = [*notes, f"the file was not in date order: {moved} rows sorted into place"]
    raw.attrs["notes"] = notes
    return raw


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
    parsed = _parse_csv(path, mtime_ns).attrs
    if parsed.get("notes"):  # what reading the file took (sorting it, reading its dates): the report says so
        reordered = {"rows_reordered": parsed["reordered"]} if parsed.get("reordered") else {}
        report = report.model_copy(update={"repaired": {**report.repaired, **reordered},
                                           "notes": [*parsed["notes"], *report.notes]})
    if report.dropped or report.notes:
        logger.debug("{}: dropped {} {}", Path(path).name, report.dropped, " ".join(report.notes))
    return frame, report
