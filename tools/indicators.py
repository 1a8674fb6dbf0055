"""Technical indicators with ``ta``'s definitions and ``ta``'s numbers, on plain arrays, warm-up rows masked as NaN.

Every indicator is the one ``ta`` computes (tests compare them bit for bit): EMAs and RSI are pandas'
``ewm(adjust=False)``, SMAs and Bollinger bands pandas' ``rolling``, ATR and ADX Wilder's recursions as
``ta`` writes them. They run on numpy arrays through pandas' own window kernels: on a 300-bar window
the pandas objects around each call cost ten times the arithmetic, and a backtest computes one window
per ticker and day.

``ta`` fills the warm-up of ATR and ADX with 0.0 instead of NaN; a zero ATR would make
every stop sit at the entry price, so those rows are masked here before anyone reads them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from agent.market.bars import OHLCV

try:  # pandas' Cython window kernels: the arithmetic of Series.ewm/rolling without the objects around it
    from pandas._libs.window import aggregations as _kernels
except ImportError:  # pragma: no cover - a pandas that moved them: its public API gives the same numbers
    _kernels = None

RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_WINDOW, BB_STD = 20, 2
ATR_WINDOW = 14
ADX_WINDOW = 14
VOLUME_WINDOW = 20
SMA_WINDOWS = (20, 50, 200)
EMA_WINDOWS = (9, 21)

# The rows at the start of each series that ta fills with 0.0 rather than NaN.
ATR_WARMUP = ATR_WINDOW - 1
ADX_WARMUP = 2 * ADX_WINDOW - 1


# ------------------------------------------------------------------ pandas' window arithmetic on arrays

def _window_input(values: Sequence[float]) -> np.ndarray:
    """What pandas hands its window kernels: float64, infinities as NaN."""
    x = np.asarray(values, dtype=np.float64)
    inf = np.isinf(x)
    return np.where(inf, np.nan, x) if inf.any() else x


def ewm_mean(values: Sequence[float], *, span: float | None = None, alpha: float | None = None,
             min_periods: int) -> np.ndarray:
    """``Series.ewm(span=... or alpha=..., min_periods=..., adjust=False).mean()``, as an array."""
    com = (span - 1) / 2 if span is not None else (1 - alpha) / alpha  # pandas' own conversion
    x = _window_input(values)
    if _kernels is None or not len(x):
        return pd.Series(x, dtype=float).ewm(com=com, min_periods=min_periods, adjust=False).mean().to_numpy()
    return _kernels.ewm(x, np.zeros(1, dtype=np.int64), np.array([len(x)], dtype=np.int64), max(int(min_periods), 1),
                        float(com), False, False, None, True)


def _trailing_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    end = np.arange(1, n + 1, dtype=np.int64)
    return np.clip(end - window, 0, n), end


def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """``Series.rolling(window).mean()`` (NaN until ``window`` values), as an array."""
    x = _window_input(values)
    if _kernels is None or not len(x):
        return pd.Series(x, dtype=float).rolling(window).mean().to_numpy()
    return _kernels.roll_mean(x, *_trailing_bounds(len(x), window), window)


def rolling_std(values: Sequence[float], window: int) -> np.ndarray:
    """``Series.rolling(window).std(ddof=0)`` (the population deviation Bollinger bands use), as an array."""
    x = _window_input(values)
    if _kernels is None or not len(x):
        return pd.Series(x, dtype=float).rolling(window).std(ddof=0).to_numpy()
    var = _kernels.roll_var(x, *_trailing_bounds(len(x), window), window, 0)
    with np.errstate(invalid="ignore"):
        std = np.sqrt(var)
    std[var < 0] = 0.0  # pandas' zsqrt: rounding can leave a tiny negative variance
    return std


# ------------------------------------------------------------------ the indicators

def rsi(close: np.ndarray, window: int = RSI_WINDOW) -> np.ndarray:
    """``ta``'s RSIIndicator: Wilder averages of gains and losses (the first bar counts as no change)."""
    diff = np.diff(close, prepend=np.nan)
    up = np.where(diff > 0, diff, 0.0)
    down = -np.where(diff < 0, diff, 0.0)
    avg_up = ewm_mean(up, alpha=1 / window, min_periods=window)
    avg_down = ewm_mean(down, alpha=1 / window, min_periods=window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(avg_down == 0, 100, 100 - (100 / (1 + avg_up / avg_down)))


def _masked(values: np.ndarray, warmup: int) -> np.ndarray:
    out = values.astype(float)
    out[: min(warmup, len(out))] = np.nan
    return out


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """``ta``'s AverageTrueRange, step for step on plain floats (tests check both give the same values)."""
    prev = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    atr = np.zeros(len(close))
    atr[window - 1] = tr[:window].mean()
    value, keep, w = float(atr[window - 1]), window - 1, float(window)
    steps = tr[window:].tolist()
    for i, x in enumerate(steps, start=window):
        value = (value * keep + x) / w
        atr[i] = value
    return atr


def _smoothed_sums(x: np.ndarray, window: int, length: int) -> np.ndarray:
    """``ta``'s ADX running sums: seeded with the first ``window`` valid values; the last one stays 0."""
    out = np.zeros(length)
    value, w = float(x[~np.isnan(x)][:window].sum()), float(window)
    sums = [value]
    for step in x[window + 1: window + length - 1].tolist():
        value = value - (value / w) + step
        sums.append(value)
    out[: len(sums)] = sums
    return out


def wilder_adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """``ta``'s ADXIndicator.adx(), quirks included, on plain arrays (tests check both agree)."""
    prev = np.concatenate([[np.nan], close[:-1]])
    length = len(close) - (window - 1)
    trs = _smoothed_sums(np.amax([high, prev], axis=0) - np.amin([low, prev], axis=0), window, length)
    up = high - np.concatenate([[np.nan], high[:-1]])
    down = np.concatenate([[np.nan], low[:-1]]) - low
    with np.errstate(invalid="ignore"):
        pos = np.abs(((up > down) & (up > 0)) * up)
        neg = np.abs(((down > up) & (down > 0)) * down)
    dip, din = _smoothed_sums(pos, window, length), _smoothed_sums(neg, window, length)
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = np.where(trs != 0, 100 * (dip / trs), 0.0)
        minus = np.where(trs != 0, 100 * (din / trs), 0.0)
        dx = np.where(plus + minus != 0, 100 * np.abs((plus - minus) / (plus + minus)), 0.0)
    adx = np.zeros(length)
    if length > window:
        value, keep, w = float(dx[:window].mean()), window - 1, float(window)
        adx[window] = value
        for i, x in enumerate(dx[window: length - 1].tolist(), start=window + 1):
            value = ((value * keep) + x) / w
            adx[i] = value
    return np.concatenate([np.zeros(window - 1), adx])


def indicator_columns(high: Sequence[float], low: Sequence[float], close: Sequence[float],
                      volume: Sequence[float]) -> dict[str, np.ndarray]:
    """Every indicator for every bar, oldest first, as arrays (``indicator_frame``'s columns but close)."""
    high, low = np.asarray(high, dtype=float), np.asarray(low, dtype=float)
    close, volume = np.asarray(close, dtype=float), np.asarray(volume, dtype=float)
    out = {"rsi": rsi(close)}
    macd = (ewm_mean(close, span=MACD_FAST, min_periods=MACD_FAST)
            - ewm_mean(close, span=MACD_SLOW, min_periods=MACD_SLOW))
    signal = ewm_mean(macd, span=MACD_SIGNAL, min_periods=MACD_SIGNAL)
    out.update(macd=macd, macd_signal=signal, macd_hist=macd - signal)
    middle, std = rolling_mean(close, BB_WINDOW), rolling_std(close, BB_WINDOW)
    upper, lower = middle + BB_STD * std, middle - BB_STD * std
    with np.errstate(divide="ignore", invalid="ignore"):
        percent = (close - lower) / np.where(upper != lower, upper - lower, np.nan)
    out.update(bb_upper=upper, bb_middle=middle, bb_lower=lower, bb_percent=percent)
    for w in SMA_WINDOWS:
        out[f"sma_{w}"] = rolling_mean(close, w)
    for w in EMA_WINDOWS:
        out[f"ema_{w}"] = ewm_mean(close, span=w, min_periods=w)
    n = len(close)
    out["atr"] = _masked(wilder_atr(high, low, close, ATR_WINDOW), ATR_WARMUP) if n > ATR_WARMUP else np.full(n, np.nan)
    out["adx"] = _masked(wilder_adx(high, low, close, ADX_WINDOW), ADX_WARMUP) if n > ADX_WARMUP else np.full(n, np.nan)
    avg_volume = rolling_mean(volume, VOLUME_WINDOW)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["volume_ratio"] = np.where(avg_volume > 0, volume / avg_volume, np.nan)
    return out


def _check_columns(bars: pd.DataFrame) -> None:
    missing = [c for c in OHLCV if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")


def indicator_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """All indicators for every bar. ``bars`` has columns open, high, low, close, volume."""
    _check_columns(bars)
    columns = indicator_columns(bars["high"], bars["low"], bars["close"], bars["volume"])
    return pd.DataFrame({"close": bars["close"], **columns}, index=bars.index)


class IndicatorSnapshot(BaseModel):
    """The latest value of every indicator; None where the series is still warming up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bar_date: str
    close: float
    change_1d: float | None
    change_5d: float | None
    change_20d: float | None
    rsi: float | None
    macd: float | None
    macd_signal: float | None
    macd_hist: float | None
    bb_upper: float | None
    bb_middle: float | None
    bb_lower: float | None
    bb_percent: float | None
    sma_20: float | None
    sma_50: float | None
    sma_200: float | None
    ema_9: float | None
    ema_21: float | None
    atr: float | None
    adx: float | None
    volume_ratio: float | None

    def numeric(self) -> dict[str, float]:
        """The numeric fields that are known, for checking what an LLM quotes."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, float)}


def _clean(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def _change(close: np.ndarray, periods: int) -> float | None:
    if len(close) <= periods:
        return None
    prev = float(close[-1 - periods])
    return _clean(float(close[-1]) / prev - 1.0) if prev > 0 else None


def bar_label(ts) -> str:
    """ISO date for daily bars, ISO date-time for intraday bars."""
    ts = pd.Timestamp(ts)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def bar_labels(index: pd.DatetimeIndex) -> list[str]:
    """``bar_label`` of every timestamp, vectorised for the daily case (the backtest's hot path)."""
    if index.tz is None:  # numpy checks and formats naive dates without a Python call per bar
        stamps = index.to_numpy()
        days = stamps.astype("datetime64[D]")
        if (days == stamps).all():
            return np.datetime_as_string(days).tolist()
    elif len(index) and (index == index.normalize()).all():
        return list(index.strftime("%Y-%m-%d"))
    return [bar_label(t) for t in index]


def latest_indicators(high: Sequence[float], low: Sequence[float], close: Sequence[float], volume: Sequence[float],
                      bar_date: str) -> IndicatorSnapshot:
    """Snapshot of the last bar's indicators from plain columns, oldest first (the graph keeps bars as lists)."""
    if not len(close):
        raise ValueError("no bars to compute indicators on")
    close = np.asarray(close, dtype=float)
    columns = indicator_columns(high, low, close, volume)
    return IndicatorSnapshot(
        bar_date=bar_date,
        close=round(float(close[-1]), 6),
        change_1d=_change(close, 1),
        change_5d=_change(close, 5),
        change_20d=_change(close, 20),
        **{name: _clean(values[-1]) for name, values in columns.items()},
    )


def indicator_snapshot(bars: pd.DataFrame) -> IndicatorSnapshot:
    """Snapshot of the last bar's indicators (what the technical layer sees)."""
    if bars.empty:
        raise ValueError("no bars to compute indicators on")
    _check_columns(bars)
    return latest_indicators(bars["high"], bars["low"], bars["close"], bars["volume"], bar_label(bars.index[-1]))


class TimeframeSummary(BaseModel):
    """A short view of one timeframe for the technical layer (multi-timeframe confirmation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeframe: str
    bars: int
    last_bar: str
    close: float
    change: float | None  # over the bars given
    rsi: float | None
    ema_9_above_21: bool | None
    trend: str  # up | down | flat, from the slope of SMA 20 over its last 5 bars


def timeframe_summary(bars: pd.DataFrame, timeframe: str) -> TimeframeSummary:
    if bars.empty:
        raise ValueError(f"no {timeframe} bars to summarise")
    close = bars["close"].to_numpy(dtype=float)
    ema_fast = ewm_mean(close, span=EMA_WINDOWS[0], min_periods=EMA_WINDOWS[0])[-1]
    ema_slow = ewm_mean(close, span=EMA_WINDOWS[1], min_periods=EMA_WINDOWS[1])[-1]
    sma = rolling_mean(close, 20)
    slope = (sma[-1] / sma[-6] - 1.0) if np.count_nonzero(~np.isnan(sma)) >= 6 else float("nan")
    trend = "flat" if not math.isfinite(slope) or abs(slope) < 0.002 else ("up" if slope > 0 else "down")
    both = math.isfinite(ema_fast) and math.isfinite(ema_slow)
    return TimeframeSummary(
        timeframe=timeframe,
        bars=len(close),
        last_bar=bar_label(bars.index[-1]),
        close=round(float(close[-1]), 6),
        change=_clean(close[-1] / close[0] - 1.0) if close[0] > 0 else None,
        rsi=_clean(rsi(close)[-1]) if len(close) > RSI_WINDOW else None,
        ema_9_above_21=bool(ema_fast > ema_slow) if both else None,
        trend=trend,
    )
