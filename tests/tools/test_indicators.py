"""tools.indicators checked against indicators written out by hand on real PETR4 bars.

The reference values below are computed with plain numpy recursions and windows, never with
``ta``, but follow ``ta``'s conventions (read from its source):

- EMA: ``ewm(span=w, adjust=False, min_periods=w)``: the recursion starts at the first close,
  values before index w-1 are NaN.
- RSI: Wilder smoothing ``ewm(alpha=1/14, adjust=False, min_periods=14)`` of gains and losses,
  where the first bar counts as a zero change (``diff`` NaN is replaced by 0.0); RSI is 100
  where the average loss is zero.
- MACD signal: EMA(9) of the MACD line, starting at the first defined MACD value.
- Bollinger: population standard deviation (ddof=0).
- ATR: first value is the mean of the first 14 true ranges (the first one is high - low), at
  index 13; then ``atr = (prev * 13 + tr) / 14``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from tests.conftest import load_daily
from tools.indicators import (
    ADX_WARMUP,
    ATR_WARMUP,
    ATR_WINDOW,
    IndicatorSnapshot,
    bar_label,
    indicator_frame,
    indicator_snapshot,
    timeframe_summary,
)

WINDOW = 300  # bars of PETR4 the indicators run on (as the cascade sees them)
RTOL = 1e-6


# --------------------------------------------------------------------------- helpers




def recursive_mean(values: np.ndarray, alpha: float, start: int) -> np.ndarray:
    """x[start] seeds the average, then avg += alpha * (x - avg). NaN before ``start``."""
    out = np.full(len(values), np.nan)
    out[start] = values[start]
    for i in range(start + 1, len(values)):
        out[i] = out[i - 1] + alpha * (values[i] - out[i - 1])
    return out


def masked_before(values: np.ndarray, first_valid: int) -> np.ndarray:
    out = values.copy()
    out[:first_valid] = np.nan
    return out


def ema(values: np.ndarray, span: int, start: int = 0) -> np.ndarray:
    """EMA seeded at ``start``, NaN until it has ``span`` values."""
    return masked_before(recursive_mean(values, 2.0 / (span + 1), start), start + span - 1)


def window_stat(values: np.ndarray, window: int, stat) -> np.ndarray:
    """``stat`` over each trailing window, NaN before the first full window."""
    out = np.full(len(values), np.nan)
    out[window - 1:] = stat(sliding_window_view(values, window), axis=1)
    return out


def wilder_rsi(close: np.ndarray, window: int = 14) -> np.ndarray:
    delta = np.diff(close, prepend=np.nan)  # delta[0] is NaN: ta counts it as a zero change
    gain = np.where(delta > 0, delta, 0.0)
    loss = np.where(delta < 0, -delta, 0.0)
    avg_gain = recursive_mean(gain, 1.0 / window, 0)
    avg_loss = recursive_mean(loss, 1.0 / window, 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 on the first bar
        rsi = np.where(avg_loss == 0, 100.0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return masked_before(rsi, window - 1)


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int = 14) -> np.ndarray:
    prev_close = np.concatenate([[np.nan], close[:-1]])
    tr = np.fmax.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    atr = np.full(len(close), np.nan)
    atr[window - 1] = tr[:window].mean()
    for i in range(window, len(close)):
        atr[i] = (atr[i - 1] * (window - 1) + tr[i]) / window
    return atr


def reference_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Every indicator of ``indicator_frame`` except ADX, computed by hand."""
    close = bars["close"].to_numpy(float)
    high, low = bars["high"].to_numpy(float), bars["low"].to_numpy(float)
    volume = bars["volume"].to_numpy(float)

    macd = masked_before(ema(close, 12) - ema(close, 26), 25)  # defined once EMA(26) is
    signal = ema(macd, 9, start=25)
    mid = window_stat(close, 20, np.mean)
    std = window_stat(close, 20, np.std)  # numpy's default ddof=0: population std
    upper, lower = mid + 2 * std, mid - 2 * std
    ref = {
        "rsi": wilder_rsi(close),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": macd - signal,
        "bb_upper": upper,
        "bb_middle": mid,
        "bb_lower": lower,
        "bb_percent": (close - lower) / (upper - lower),
        "sma_20": mid,
        "sma_50": window_stat(close, 50, np.mean),
        "sma_200": window_stat(close, 200, np.mean),
        "ema_9": ema(close, 9),
        "ema_21": ema(close, 21),
        "atr": wilder_atr(high, low, close),
        "volume_ratio": volume / window_stat(volume, 20, np.mean),
    }
    return pd.DataFrame(ref, index=bars.index)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """The last WINDOW daily bars of PETR4."""
    return load_daily("PETR4.SA").iloc[-WINDOW:]


@pytest.fixture(scope="module")
def frame(bars) -> pd.DataFrame:
    return indicator_frame(bars)


@pytest.fixture(scope="module")
def reference(bars) -> pd.DataFrame:
    return reference_frame(bars)


# --------------------------------------------------------------------------- hand-computed values


@pytest.mark.parametrize(
    "column",
    ["rsi", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "bb_percent",
     "sma_20", "sma_50", "sma_200", "ema_9", "ema_21", "atr", "volume_ratio"],
)
def test_indicator_matches_hand_computation(frame, reference, column):
    """Every bar of each indicator equals the hand formula, NaN exactly where the formula is undefined."""
    np.testing.assert_allclose(frame[column].to_numpy(float), reference[column].to_numpy(float),
                               rtol=RTOL, atol=1e-12, equal_nan=True, err_msg=column)
    assert np.isfinite(frame[column].iloc[-1]), f"{column} undefined on the last bar"


def test_first_defined_bar_of_each_indicator(frame):
    """Each indicator starts exactly where its window is full, not earlier nor later."""
    first_valid = {"rsi": 13, "ema_9": 8, "ema_21": 20, "macd": 25, "macd_signal": 33,
                   "sma_20": 19, "sma_50": 49, "sma_200": 199, "bb_upper": 19,
                   "atr": ATR_WARMUP, "adx": ADX_WARMUP, "volume_ratio": 19}
    for column, index in first_valid.items():
        assert frame.index.get_loc(frame[column].first_valid_index()) == index, column


def test_snapshot_matches_hand_computation_on_last_bar(bars, reference):
    """The snapshot quotes the last bar's hand-computed values (to its 6-decimal rounding)."""
    snap = indicator_snapshot(bars)
    last = reference.iloc[-1]
    for column in reference.columns:
        assert getattr(snap, column) == pytest.approx(last[column], rel=RTOL, abs=1e-6), column


def test_snapshot_at_earlier_dates(bars, reference):
    """Cutting the bars at an earlier date gives that date's values (no look-ahead, no index drift)."""
    for cut in (-1, -21, -60):
        date = bars.index[cut]
        snap = indicator_snapshot(bars.loc[:date])
        assert snap.bar_date == date.date().isoformat()
        for column in ("rsi", "macd_signal", "bb_lower", "sma_50", "ema_21", "atr", "volume_ratio"):
            expected = reference.loc[date, column]
            assert getattr(snap, column) == pytest.approx(expected, rel=RTOL, abs=1e-6), (date, column)


# --------------------------------------------------------------------------- warm-up masking


def test_atr_and_adx_warmup_is_nan_then_finite(frame):
    """ATR/ADX are NaN for exactly their warm-up rows and finite (non-zero) after."""
    for column, warmup in (("atr", ATR_WARMUP), ("adx", ADX_WARMUP)):
        series = frame[column]
        assert series.iloc[:warmup].isna().all(), column
        assert np.isfinite(series.iloc[warmup:]).all(), column
        assert (series.iloc[warmup:] > 0).all(), column


def test_no_zero_leaks_from_ta_warmup(bars, frame):
    """ta writes 0.0 in the warm-up rows; none of those zeros reach the frame."""
    from ta.volatility import AverageTrueRange

    raw = AverageTrueRange(bars["high"], bars["low"], bars["close"], window=ATR_WINDOW).average_true_range()
    assert (raw.iloc[:ATR_WARMUP] == 0.0).all()  # what the masking is there for
    assert not (frame[["atr", "adx"]] == 0.0).any().any()


@pytest.mark.parametrize("n_bars", [1, 5, ATR_WARMUP])
def test_snapshot_has_none_before_atr_warmup(bars, n_bars):
    """With fewer bars than the ATR warm-up, atr and adx are None, never 0.0."""
    snap = indicator_snapshot(bars.iloc[:n_bars])
    assert snap.atr is None
    assert snap.adx is None


@pytest.mark.parametrize("n_bars", [ATR_WINDOW + 1, 20, ADX_WARMUP])
def test_snapshot_has_atr_but_no_adx_inside_adx_warmup(bars, reference, n_bars):
    """Past the ATR warm-up but inside the ADX one: ATR is the hand value, ADX is None."""
    snap = indicator_snapshot(bars.iloc[:n_bars])
    assert snap.atr == pytest.approx(reference["atr"].iloc[n_bars - 1], rel=RTOL, abs=1e-6)
    assert snap.adx is None


def test_snapshot_has_adx_after_its_warmup(bars, frame):
    """Two bars past the ADX warm-up the snapshot carries a positive ADX equal to the frame's."""
    n_bars = ADX_WARMUP + 2
    snap = indicator_snapshot(bars.iloc[:n_bars])
    assert snap.adx is not None and snap.adx > 0
    assert snap.adx == pytest.approx(frame["adx"].iloc[n_bars - 1], abs=1e-6)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_bar_date_and_changes(bars):
    """bar_date is the last bar's ISO date; change_Nd is close / close N bars back - 1."""
    snap = indicator_snapshot(bars)
    close = bars["close"].to_numpy(float)
    assert snap.bar_date == bars.index[-1].strftime("%Y-%m-%d")
    assert snap.close == pytest.approx(close[-1], abs=1e-6)
    for periods in (1, 5, 20):
        expected = close[-1] / close[-1 - periods] - 1.0
        assert getattr(snap, f"change_{periods}d") == pytest.approx(expected, abs=1e-6)


def test_snapshot_changes_are_none_without_enough_history(bars):
    """With 6 bars there is a 1- and 5-bar change but no 20-bar change."""
    snap = indicator_snapshot(bars.iloc[:6])
    assert snap.change_1d is not None and snap.change_5d is not None
    assert snap.change_20d is None


@pytest.mark.parametrize("n_bars", [3, WINDOW])
def test_numeric_returns_only_known_floats(bars, n_bars):
    """numeric() holds every non-None numeric field as a float, and nothing else."""
    snap = indicator_snapshot(bars.iloc[:n_bars])
    numeric = snap.numeric()
    expected_keys = {k for k, v in snap.model_dump().items() if v is not None and k != "bar_date"}
    assert set(numeric) == expected_keys
    assert all(type(v) is float and math.isfinite(v) for v in numeric.values())


def test_snapshot_is_frozen_and_strict(bars):
    """The snapshot cannot be altered after the fact nor take unknown fields."""
    snap = indicator_snapshot(bars)
    with pytest.raises(Exception):
        snap.rsi = 50.0
    with pytest.raises(Exception):
        IndicatorSnapshot(**snap.model_dump(), extra_field=1.0)


def test_bad_input_is_rejected(bars):
    """Missing columns and an empty frame raise instead of producing numbers."""
    with pytest.raises(ValueError, match="volume"):
        indicator_frame(bars.drop(columns=["volume"]))
    with pytest.raises(ValueError):
        indicator_snapshot(bars.iloc[:0])


@pytest.mark.parametrize(
    ("ts", "label"),
    [
        ("2025-06-30", "2025-06-30"),
        ("2025-06-30 00:00:00-03:00", "2025-06-30"),
        ("2025-06-30 10:15", "2025-06-30T10:15:00"),
    ],
)
def test_bar_label(ts, label):
    """Daily bars are labelled by date, intraday bars by date and time."""
    assert bar_label(pd.Timestamp(ts)) == label


def test_atr_and_adx_are_available_exactly_at_the_end_of_their_warmup(bars):
    """ta gives a valid ATR with 14 bars and ADX with 28: the snapshot must not hide them."""
    assert indicator_snapshot(bars.iloc[-(ATR_WARMUP + 1):]).atr is not None
    assert indicator_snapshot(bars.iloc[-(ADX_WARMUP + 1):]).adx is not None


# ---------------------------------------------------------------- ATR and ADX on plain arrays

@settings(max_examples=60, deadline=None)
@given(st.integers(30, 200), st.integers(0, 10_000))
def test_wilder_atr_and_adx_equal_ta_exactly(n, seed):
    from ta.trend import ADXIndicator
    from ta.volatility import AverageTrueRange

    from tools.indicators import wilder_adx, wilder_atr

    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    high = close * (1 + rng.uniform(0, 0.03, n))
    low = close * (1 - rng.uniform(0, 0.03, n))
    h, l, c = pd.Series(high), pd.Series(low), pd.Series(close)
    np.testing.assert_array_equal(wilder_atr(high, low, close, 14), AverageTrueRange(h, l, c, 14).average_true_range())
    np.testing.assert_array_equal(wilder_adx(high, low, close, 14), ADXIndicator(h, l, c, 14).adx())


def test_wilder_atr_and_adx_equal_ta_on_real_bars():
    from ta.trend import ADXIndicator
    from ta.volatility import AverageTrueRange

    from tools.indicators import wilder_adx, wilder_atr

    bars = load_daily("PETR4.SA").dropna().iloc[-600:]
    h, l, c = bars["high"], bars["low"], bars["close"]
    arrays = (h.to_numpy(float), l.to_numpy(float), c.to_numpy(float))
    np.testing.assert_array_equal(wilder_atr(*arrays, 14), AverageTrueRange(h, l, c, 14).average_true_range())
    np.testing.assert_array_equal(wilder_adx(*arrays, 14), ADXIndicator(h, l, c, 14).adx())


# ---------------------------------------------------------------- ta, bit for bit

def ta_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The indicators as the ``ta`` library computes them (how indicator_frame used to compute them)."""
    from ta.momentum import RSIIndicator
    from ta.trend import MACD, ADXIndicator, EMAIndicator, SMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands

    close, high, low, volume = bars["close"], bars["high"], bars["low"], bars["volume"]
    out = pd.DataFrame(index=bars.index)
    out["close"] = close
    out["rsi"] = RSIIndicator(close, window=14).rsi()
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9)
    out["macd"], out["macd_signal"], out["macd_hist"] = macd.macd(), macd.macd_signal(), macd.macd_diff()
    bb = BollingerBands(close, window=20, window_dev=2)
    out["bb_upper"], out["bb_middle"] = bb.bollinger_hband(), bb.bollinger_mavg()
    out["bb_lower"], out["bb_percent"] = bb.bollinger_lband(), bb.bollinger_pband()
    for w in (20, 50, 200):
        out[f"sma_{w}"] = SMAIndicator(close, window=w).sma_indicator()
    for w in (9, 21):
        out[f"ema_{w}"] = EMAIndicator(close, window=w).ema_indicator()
    n = len(bars)
    atr = AverageTrueRange(high, low, close, window=14).average_true_range() if n > ATR_WARMUP else None
    out["atr"] = atr.where(np.arange(n) >= ATR_WARMUP) if atr is not None else np.nan
    adx = ADXIndicator(high, low, close, window=14).adx() if n > ADX_WARMUP else None
    out["adx"] = adx.where(np.arange(n) >= ADX_WARMUP) if adx is not None else np.nan
    avg_volume = volume.rolling(20, min_periods=20).mean()
    out["volume_ratio"] = (volume / avg_volume).where(avg_volume > 0)
    return out


def ta_timeframe_summary(bars: pd.DataFrame) -> dict:
    from ta.momentum import RSIIndicator
    from ta.trend import EMAIndicator, SMAIndicator

    close = bars["close"].astype(float)
    sma = SMAIndicator(close, window=20).sma_indicator()
    slope = (sma.iloc[-1] / sma.iloc[-6] - 1.0) if len(sma.dropna()) >= 6 else float("nan")
    fast = EMAIndicator(close, window=9).ema_indicator().iloc[-1]
    slow = EMAIndicator(close, window=21).ema_indicator().iloc[-1]
    rsi = RSIIndicator(close, window=14).rsi().iloc[-1] if len(close) > 14 else None
    return {"rsi": None if rsi is None or math.isnan(rsi) else round(float(rsi), 6),
            "ema_9_above_21": bool(fast > slow) if math.isfinite(fast) and math.isfinite(slow) else None,
            "trend": "flat" if not math.isfinite(slope) or abs(slope) < 0.002 else ("up" if slope > 0 else "down")}


def assert_same_as_ta(bars: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(indicator_frame(bars), ta_frame(bars), check_exact=True)
    if bars.empty:
        return
    summary = timeframe_summary(bars, "1d").model_dump()
    assert {k: summary[k] for k in ("rsi", "ema_9_above_21", "trend")} == ta_timeframe_summary(bars)


@pytest.mark.parametrize("ticker", ["PETR4.SA", "VALE3.SA", "BBDC4.SA", "MGLU3.SA"])
def test_indicators_equal_ta_bit_for_bit_on_real_windows(ticker):
    """On windows of every length the cascade meets (a few bars to the 300-bar lookback), at random dates."""
    daily = load_daily(ticker).dropna()
    daily = daily.loc[(daily[["open", "high", "low", "close"]] > 0).all(axis=1)]
    rng = np.random.default_rng(5)
    for length in (1, 2, 14, 15, 27, 28, 29, 60, 199, 200, 300, 300):
        end = int(rng.integers(length, len(daily) + 1))
        assert_same_as_ta(daily.iloc[end - length:end])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 260), st.integers(0, 10_000), st.booleans())
def test_indicators_equal_ta_bit_for_bit_on_generated_bars(n, seed, flat_run):
    """Random walks, with a run of identical closes (pandas' constant-series guard, zero-width bands)."""
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    if flat_run and n > 30:
        close[5:30] = close[5]
    high = close * (1 + rng.uniform(0, 0.03, n))
    low = close * (1 - rng.uniform(0, 0.03, n))
    volume = np.where(rng.random(n) < 0.1, 0.0, rng.integers(1, 10**6, n)).astype(float)
    index = pd.bdate_range("2020-01-01", periods=n)
    assert_same_as_ta(pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": volume},
                                   index=index))


def test_without_the_pandas_kernels_the_public_api_gives_the_same_numbers(monkeypatch):
    import tools.indicators as indicators

    bars = load_daily("PETR4.SA").dropna().iloc[-300:]
    fast = indicator_frame(bars)
    monkeypatch.setattr(indicators, "_kernels", None)
    pd.testing.assert_frame_equal(indicator_frame(bars), fast, check_exact=True)
