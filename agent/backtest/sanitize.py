"""The report's input hygiene: a run's numbers, dates, tickers and trades are untrusted until cleaned here.

Strict JSON (no NaN), float series on a clean date index, safe chart file names, and trade dates and
prices that are either usable or None: the charts and the page never see a value they must guard.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd


def to_jsonable(value: Any) -> Any:
    """A strict-JSON copy: NaN/inf become null, numpy and pandas scalars plain Python, dates ISO strings."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return [to_jsonable(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def clean_series(series: pd.Series | None) -> pd.Series:
    """Float values on a tz-naive, sorted, unique DatetimeIndex, without NaN/inf (charts need nothing else)."""
    if series is None or len(series) == 0:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([]))
    s = pd.to_numeric(pd.Series(series), errors="coerce").astype(float)
    index = pd.DatetimeIndex(pd.to_datetime(s.index, errors="coerce"))
    if index.tz is not None:
        index = index.tz_localize(None)
    s.index = index
    s = s[s.index.notna() & np.isfinite(s.to_numpy())]
    s = s[~s.index.duplicated(keep="last")].sort_index()
    return s


def chart_names(prices: Mapping[Any, Any]) -> dict[Any, str]:
    """ticker -> a safe, unique PNG file name (tickers are untrusted: no path separators, no quotes)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for ticker in prices:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(ticker)).strip(".") or "ticker"
        name, n = f"trades_{stem}.png", 2
        while name.lower() in used:  # case-insensitive file systems
            name, n = f"trades_{stem}_{n}.png", n + 1
        used.add(name.lower())
        names[ticker] = name
    return names


def trade_date(trade: Mapping[str, Any]) -> pd.Timestamp | None:
    try:
        ts = pd.Timestamp(str(trade.get("bar_date") or "")[:10])
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts


def as_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
