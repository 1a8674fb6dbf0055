"""Technical indicators computed with the ``ta`` library, warm-up rows masked as NaN.

``ta`` fills the warm-up of ATR and ADX with 0.0 instead of NaN; a zero ATR would make
every stop sit at the entry price, so those rows are masked here before anyone reads them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from ta.momentum import RSIIndicator
from ta.trend import EMAIndicator, MACD, SMAIndicator
from ta.volatility import BollingerBands

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

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")


def _masked(series: pd.Series, warmup: int) -> pd.Series:
    out = series.astype(float).copy()
    out.iloc[: min(warmup, len(out))] = np.nan
    return out


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """``ta``'s AverageTrueRange, step for step on plain arrays (its per-element pandas loop is the
    slowest part of a decision; tests check both give the same values)."""
    prev = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))
    atr = np.zeros(len(close))
    atr[window - 1] = tr[:window].mean()
    value, keep, w = atr[window - 1], window - 1, float(window)
    for i in range(window, len(atr)):
        value = (value * keep + tr[i]) / w
        atr[i] = value
    return atr


def _smoothed_sums(x: np.ndarray, window: int, length: int) -> np.ndarray:
    """``ta``'s ADX running sums: seeded with the first ``window`` valid values; the last one stays 0."""
    out = np.zeros(length)
    out[0] = x[~np.isnan(x)][:window].sum()
    w = float(window)
    for i in range(1, length - 1):
        out[i] = out[i - 1] - (out[i - 1] / w) + x[window + i]
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
        adx[window] = dx[:window].mean()
        keep, w = window - 1, float(window)
        for i in range(window + 1, length):
            adx[i] = ((adx[i - 1] * keep) + dx[i - 1]) / w
    return np.concatenate([np.zeros(window - 1), adx])


def indicator_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """All indicators for every bar. ``bars`` has columns open, high, low, close, volume."""
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    close, high, low, volume = bars["close"], bars["high"], bars["low"], bars["volume"]
    out = pd.DataFrame(index=bars.index)
    out["close"] = close
    out["rsi"] = RSIIndicator(close, window=RSI_WINDOW).rsi()
    macd = MACD(close, window_slow=MACD_SLOW, window_fast=MACD_FAST, window_sign=MACD_SIGNAL)
    out["macd"] = macd.macd()
    out["macd_signal"] = macd.macd_signal()
    out["macd_hist"] = macd.macd_diff()
    bb = BollingerBands(close, window=BB_WINDOW, window_dev=BB_STD)
    out["bb_upper"] = bb.bollinger_hband()
    out["bb_middle"] = bb.bollinger_mavg()
    out["bb_lower"] = bb.bollinger_lband()
    out["bb_percent"] = bb.bollinger_pband()
    for w in SMA_WINDOWS:
        out[f"sma_{w}"] = SMAIndicator(close, window=w).sma_indicator()
    for w in EMA_WINDOWS:
        out[f"ema_{w}"] = EMAIndicator(close, window=w).ema_indicator()
    if len(bars) > ATR_WARMUP:
        out["atr"] = _masked(pd.Series(wilder_atr(high.to_numpy(float), low.to_numpy(float), close.to_numpy(float),
                                                  ATR_WINDOW), index=bars.index), ATR_WARMUP)
    else:
        out["atr"] = np.nan
    if len(bars) > ADX_WARMUP:
        out["adx"] = _masked(pd.Series(wilder_adx(high.to_numpy(float), low.to_numpy(float), close.to_numpy(float),
                                                  ADX_WINDOW), index=bars.index), ADX_WARMUP)
    else:
        out["adx"] = np.nan
    avg_volume = volume.rolling(VOLUME_WINDOW, min_periods=VOLUME_WINDOW).mean()
    out["volume_ratio"] = (volume / avg_volume).where(avg_volume > 0)
    return out


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


def _change(close: pd.Series, periods: int) -> float | None:
    if len(close) <= periods:
        return None
    prev = float(close.iloc[-1 - periods])
    return _clean(float(close.iloc[-1]) / prev - 1.0) if prev > 0 else None


def bar_label(ts) -> str:
    """ISO date for daily bars, ISO date-time for intraday bars."""
    ts = pd.Timestamp(ts)
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def bar_labels(index: pd.DatetimeIndex) -> list[str]:
    """``bar_label`` of every timestamp, vectorised for the daily case (the backtest's hot path)."""
    if len(index) and (index == index.normalize()).all():
        return list(index.strftime("%Y-%m-%d"))
    return [bar_label(t) for t in index]


def indicator_snapshot(bars: pd.DataFrame) -> IndicatorSnapshot:
    """Snapshot of the last bar's indicators (what the technical layer sees)."""
    if bars.empty:
        raise ValueError("no bars to compute indicators on")
    frame = indicator_frame(bars)
    last = frame.iloc[-1]
    values = {col: _clean(last[col]) for col in frame.columns if col != "close"}
    close = bars["close"]
    return IndicatorSnapshot(
        bar_date=bar_label(bars.index[-1]),
        close=round(float(close.iloc[-1]), 6),
        change_1d=_change(close, 1),
        change_5d=_change(close, 5),
        change_20d=_change(close, 20),
        **values,
    )


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
    close = bars["close"].astype(float)
    rsi = _clean(RSIIndicator(close, window=RSI_WINDOW).rsi().iloc[-1]) if len(close) > RSI_WINDOW else None
    ema_fast = EMAIndicator(close, window=EMA_WINDOWS[0]).ema_indicator().iloc[-1]
    ema_slow = EMAIndicator(close, window=EMA_WINDOWS[1]).ema_indicator().iloc[-1]
    sma = SMAIndicator(close, window=20).sma_indicator()
    slope = (sma.iloc[-1] / sma.iloc[-6] - 1.0) if len(sma.dropna()) >= 6 else float("nan")
    trend = "flat" if not math.isfinite(slope) or abs(slope) < 0.002 else ("up" if slope > 0 else "down")
    both = math.isfinite(ema_fast) and math.isfinite(ema_slow)
    return TimeframeSummary(
        timeframe=timeframe,
        bars=len(close),
        last_bar=bar_label(bars.index[-1]),
        close=round(float(close.iloc[-1]), 6),
        change=_clean(close.iloc[-1] / close.iloc[0] - 1.0) if close.iloc[0] > 0 else None,
        rsi=rsi,
        ema_9_above_21=bool(ema_fast > ema_slow) if both else None,
        trend=trend,
    )
