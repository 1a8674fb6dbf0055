"""tools.risk: hand-computed cases, hypothesis properties and a snapshot on real PETR4 bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_daily
from tools.indicators import indicator_snapshot
from tools.risk import (
    RiskLimits,
    annualized_volatility,
    apply_size_factor,
    atr_stop,
    max_drawdown,
    position_size,
    risk_snapshot,
    sharpe_ratio,
    take_profit,
)

EPS = 1e-6  # the slack position_size allows itself on a cap
PROPERTY = settings(max_examples=200, deadline=None)

# The defaults of config.yaml, written out so the tests do not depend on the config loader.
DEFAULT_LIMITS = dict(
    capital=100_000.0, max_position_fraction=0.10, max_loss_fraction=0.02, profit_target_fraction=0.06,
    atr_stop_multiple=1.5, min_reward_risk=1.5, max_volatility=0.80, max_drawdown=0.60,
    lookback_bars=252, risk_free_rate=0.10, lot_size=100,
)


# --------------------------------------------------------------------------- helpers




def limits(**overrides) -> RiskLimits:
    return RiskLimits(**{**DEFAULT_LIMITS, **overrides})


def assert_within_caps(shares: int, entry: float, stop: float, capital: float,
                       max_position_fraction: float, max_loss_fraction: float, lot_size: int) -> None:
    """Whole, non-negative lots inside the value cap and the loss cap."""
    assert shares >= 0
    assert shares % lot_size == 0
    assert shares * entry <= capital * max_position_fraction + EPS
    assert shares * (entry - stop) <= capital * max_loss_fraction + EPS


def brute_force_drawdown(prices: list[float]) -> float:
    """Largest 1 - later / earlier over every ordered pair of prices (O(n^2) definition)."""
    return max([0.0] + [1.0 - later / earlier for i, earlier in enumerate(prices) for later in prices[i + 1:]])


# --------------------------------------------------------------------------- strategies

positive_prices = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
fractions = st.floats(min_value=0.0, max_value=1.0)
lot_sizes = st.sampled_from([1, 10, 100, 1000])

risk_limits = st.builds(
    RiskLimits,
    capital=st.floats(min_value=1.0, max_value=1e9),
    max_position_fraction=fractions,
    max_loss_fraction=st.floats(min_value=0.0, max_value=0.2),
    profit_target_fraction=st.floats(min_value=1e-3, max_value=1.0),
    atr_stop_multiple=st.floats(min_value=0.1, max_value=5.0),
    min_reward_risk=st.floats(min_value=0.0, max_value=5.0),
    max_volatility=st.floats(min_value=0.0, max_value=5.0),
    max_drawdown=fractions,
    lookback_bars=st.integers(min_value=1, max_value=300),
    risk_free_rate=st.floats(min_value=0.0, max_value=0.3),
    lot_size=lot_sizes,
)


# --------------------------------------------------------------------------- Sharpe, drawdown, volatility

RETURNS = [0.01, -0.02, 0.03, 0.00]  # mean 0.005; squared deviations sum to 0.0013


def test_sharpe_hand_computed_without_risk_free_rate():
    """mean / sample std * sqrt(252) on a four-return series worked out by hand."""
    expected = 0.005 / math.sqrt(0.0013 / 3) * math.sqrt(252)
    assert expected == pytest.approx(3.812933, abs=1e-6)
    assert sharpe_ratio(pd.Series(RETURNS)) == pytest.approx(expected, rel=1e-12)


def test_sharpe_hand_computed_with_risk_free_rate():
    """The annual rate becomes a per-period (1 + rf) ** (1/252) - 1 subtracted from the mean; std is unchanged."""
    rf_daily = 1.10 ** (1 / 252) - 1
    expected = (0.005 - rf_daily) / math.sqrt(0.0013 / 3) * math.sqrt(252)
    assert sharpe_ratio(pd.Series(RETURNS), risk_free_rate=0.10) == pytest.approx(expected, rel=1e-12)
    # A naive rf / 252 would give a visibly different number.
    naive = (0.005 - 0.10 / 252) / math.sqrt(0.0013 / 3) * math.sqrt(252)
    assert sharpe_ratio(pd.Series(RETURNS), risk_free_rate=0.10) != pytest.approx(naive, rel=1e-6)


@pytest.mark.parametrize("returns", [[], [0.01], [0.002] * 30, [0.01, float("nan")]])
def test_sharpe_undefined(returns):
    """None with fewer than two returns (NaN dropped) or with constant returns."""
    assert sharpe_ratio(pd.Series(returns, dtype=float), risk_free_rate=0.10) is None


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ([100, 120, 90, 95, 130, 65], 0.5),   # 130 -> 65 beats 120 -> 90 (0.25)
        ([100, 120, 90, 95, 100, 110], 0.25),
        ([10, 11, 12, 13], 0.0),
        ([50], 0.0),
        ([], 0.0),
    ],
)
def test_max_drawdown_hand_computed(prices, expected):
    """Largest peak-to-trough fall as a fraction of the peak."""
    assert max_drawdown(np.array(prices, dtype=float)) == pytest.approx(expected, abs=1e-12)


def test_annualized_volatility_matches_numpy():
    """Sample std of log returns times sqrt(252); None with fewer than two returns."""
    prices = pd.Series([100.0, 102.0, 99.0, 101.5, 103.0, 98.0])
    expected = np.std(np.diff(np.log(prices.to_numpy())), ddof=1) * np.sqrt(252)
    assert annualized_volatility(prices) == pytest.approx(expected, rel=1e-12)
    assert annualized_volatility(pd.Series([100.0, 101.0])) is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # pandas' own warnings on the zeros and NaN
@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(0.5, 200.0), st.just(0.0), st.just(float("nan"))), max_size=300),
       st.sampled_from([0.0, 0.10, 0.1375]))
def test_sharpe_and_volatility_are_pandas_numbers_bit_for_bit(prices, rate):
    """The array arithmetic gives exactly what the pandas formulas gave (Series.std, .mean, pct_change),
    zeros and NaN included, so records and metrics keep their values."""
    series = pd.Series(prices, dtype=float)
    log_r = np.log(series / series.shift(1)).dropna()
    volatility = None if len(log_r) < 2 else float(log_r.std(ddof=1)) * math.sqrt(252)
    returns = series.pct_change().dropna()
    excess = returns - ((1.0 + rate) ** (1.0 / 252) - 1.0)
    sd = float(excess.std(ddof=1)) if len(returns) >= 2 else math.nan
    sharpe = None if len(returns) < 2 or not math.isfinite(sd) or sd <= 1e-12 else (
        float(excess.mean()) / sd * math.sqrt(252))
    for got, want in ((annualized_volatility(series), volatility), (sharpe_ratio(returns, rate), sharpe)):
        assert (got is None and want is None) or got == want or (math.isnan(got) and math.isnan(want))


# --------------------------------------------------------------------------- stops and targets


def test_atr_stop_and_take_profit():
    """Stop = entry - k * ATR (floored at zero); take-profit = entry * (1 + target)."""
    assert atr_stop(50.0, 2.0, 1.5) == pytest.approx(47.0)
    assert atr_stop(10.0, 5.0, 3.0) == 0.0
    assert take_profit(50.0, 0.06) == pytest.approx(53.0)


@pytest.mark.parametrize(("entry", "atr", "multiple"), [(0.0, 1.0, 1.0), (10.0, 0.0, 1.0), (10.0, 1.0, -1.0)])
def test_atr_stop_rejects_non_positive_inputs(entry, atr, multiple):
    with pytest.raises(ValueError):
        atr_stop(entry, atr, multiple)


# --------------------------------------------------------------------------- position size


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # value cap binds: 10_000 / 25 = 400 shares; loss cap would allow 2_000 / 1 = 2_000
        (dict(capital=100_000, entry=25, stop=24, max_position_fraction=0.10, max_loss_fraction=0.02), 400),
        # loss cap binds: 1_000 / 5 = 200 shares; value cap would allow 50_000 / 25 = 2_000
        (dict(capital=100_000, entry=25, stop=20, max_position_fraction=0.50, max_loss_fraction=0.01), 200),
        # lot rounding: 10_000 / 30 = 333.3 shares -> 3 lots of 100
        (dict(capital=100_000, entry=30, stop=29, max_position_fraction=0.10, max_loss_fraction=0.02), 300),
        # exactly on the cap: 11_000 * 0.1 / 1.1 = 1_000 shares, though floats give 999.999...
        (dict(capital=11_000, entry=1.1, stop=1.0, max_position_fraction=0.10, max_loss_fraction=0.02), 1_000),
        # lot size 1: 2_000 / 3 = 666.7 shares by loss
        (dict(capital=100_000, entry=30, stop=27, max_position_fraction=0.5, max_loss_fraction=0.02, lot_size=1), 666),
        # one lot (100 x 50 = 5_000) breaks the value cap of 200
        (dict(capital=1_000, entry=50, stop=45, max_position_fraction=0.20, max_loss_fraction=0.02), 0),
        # one lot risks 100 x 10 = 1_000 against a loss cap of 200
        (dict(capital=10_000, entry=50, stop=40, max_position_fraction=1.0, max_loss_fraction=0.02), 0),
        # stop at or above the entry: no defined risk, no position
        (dict(capital=100_000, entry=25, stop=25, max_position_fraction=0.10, max_loss_fraction=0.02), 0),
        (dict(capital=100_000, entry=25, stop=26, max_position_fraction=0.10, max_loss_fraction=0.02), 0),
        # no capital
        (dict(capital=0, entry=25, stop=24, max_position_fraction=0.10, max_loss_fraction=0.02), 0),
    ],
)
def test_position_size_hand_cases(kwargs, expected):
    assert position_size(**kwargs) == expected


@PROPERTY
@given(
    capital=st.floats(min_value=0.0, max_value=1e9),
    entry=positive_prices,
    stop_fraction=st.floats(min_value=-0.5, max_value=1.5),
    max_position_fraction=fractions,
    max_loss_fraction=fractions,
    lot_size=lot_sizes,
)
def test_position_size_never_breaks_a_cap(capital, entry, stop_fraction, max_position_fraction,
                                          max_loss_fraction, lot_size):
    """For any finite inputs: whole lots, non-negative, inside both caps; zero when stop >= entry."""
    stop = entry * stop_fraction
    shares = position_size(capital, entry, stop, max_position_fraction, max_loss_fraction, lot_size)
    assert_within_caps(shares, entry, stop, capital, max_position_fraction, max_loss_fraction, lot_size)
    if stop >= entry:
        assert shares == 0


# --------------------------------------------------------------------------- size factor


@pytest.mark.parametrize(
    ("shares", "factor", "expected"),
    [
        (500, 0.5, 200),           # 250 rounds down to 2 lots
        (500, 1.0, 500),
        (500, 1.7, 500),           # an LLM cannot grow the position
        (500, float("inf"), 0),
        (500, float("nan"), 0),
        (500, -0.5, 0),
        (500, 0.0, 0),
    ],
)
def test_apply_size_factor_hand_cases(shares, factor, expected):
    assert apply_size_factor(shares, factor) == expected


@PROPERTY
@given(shares=st.integers(min_value=0, max_value=10**9), factor=st.floats(), lot_size=lot_sizes)
def test_apply_size_factor_never_grows(shares, factor, lot_size):
    """Any float factor (NaN, inf, negative, > 1) gives whole lots between 0 and the original size."""
    shrunk = apply_size_factor(shares, factor, lot_size)
    assert 0 <= shrunk <= shares
    assert shrunk % lot_size == 0


# --------------------------------------------------------------------------- drawdown properties


@PROPERTY
@given(st.lists(st.floats(min_value=0.0, exclude_min=True, allow_infinity=False), max_size=200))
def test_max_drawdown_is_a_fraction(prices):
    """For any positive prices the drawdown lies in [0, 1]."""
    assert 0.0 <= max_drawdown(np.array(prices, dtype=float)) <= 1.0


@PROPERTY
@given(st.lists(positive_prices, max_size=40))
def test_max_drawdown_matches_pairwise_definition(prices):
    """The running-peak computation equals the largest fall over every pair of dates."""
    assert max_drawdown(np.array(prices)) == pytest.approx(brute_force_drawdown(prices), abs=1e-12)


# --------------------------------------------------------------------------- risk snapshot


@PROPERTY
@given(
    closes=st.lists(positive_prices, min_size=1, max_size=60),
    atr=st.one_of(st.none(), st.floats(min_value=1e-4, max_value=1e4)),
    risk=risk_limits,
)
def test_risk_snapshot_sizes_inside_caps_and_blocks_zero_size(closes, atr, risk):
    """Random closes and ATR: shares inside both caps; a zero size always comes with a block."""
    snap = risk_snapshot(pd.Series(closes), atr, risk)
    entry = closes[-1]
    stop = max(entry - risk.atr_stop_multiple * atr, 0.0) if atr is not None else entry
    assert_within_caps(snap.shares, entry, stop, risk.capital, risk.max_position_fraction,
                       risk.max_loss_fraction, risk.lot_size)
    if snap.shares == 0:
        assert snap.blocks
    if atr is None:
        assert snap.shares == 0 and snap.stop is None
    assert 0.0 <= snap.max_drawdown <= 1.0


@pytest.fixture(scope="module")
def petr4():
    """(closes, ATR) of the last 300 PETR4 bars, as the cascade sees them."""
    bars = load_daily("PETR4.SA").iloc[-300:]
    atr = indicator_snapshot(bars).atr
    assert atr is not None and atr > 0
    return bars["close"], atr


def test_risk_snapshot_on_petr4(petr4):
    """Real bars: stop < entry < take-profit, reward/risk = (tp - entry) / (entry - stop), stats on the lookback."""
    close, atr = petr4
    risk = limits()
    snap = risk_snapshot(close, atr, risk)
    entry = float(close.iloc[-1])

    assert snap.stop < snap.entry < snap.take_profit
    assert snap.entry == pytest.approx(entry, abs=1e-6)
    assert snap.stop == pytest.approx(entry - 1.5 * atr, abs=1e-6)
    assert snap.take_profit == pytest.approx(entry * 1.06, abs=1e-6)
    expected_rr = (snap.take_profit - snap.entry) / (snap.entry - snap.stop)
    assert snap.reward_risk == pytest.approx(expected_rr, rel=1e-5)

    window = close.to_numpy(float)[-(risk.lookback_bars + 1):]
    returns = np.diff(window) / window[:-1]
    excess = returns - (1.10 ** (1 / 252) - 1)
    assert snap.lookback_bars == risk.lookback_bars + 1
    assert snap.volatility == pytest.approx(np.std(np.diff(np.log(window)), ddof=1) * np.sqrt(252), abs=1e-6)
    assert snap.sharpe == pytest.approx(excess.mean() / excess.std(ddof=1) * np.sqrt(252), abs=1e-6)
    assert snap.max_drawdown == pytest.approx(brute_force_drawdown(list(window)), abs=1e-6)

    assert snap.shares > 0
    assert_within_caps(snap.shares, entry, entry - 1.5 * atr, risk.capital, risk.max_position_fraction,
                       risk.max_loss_fraction, risk.lot_size)
    assert snap.position_value == pytest.approx(snap.shares * entry, abs=1e-5)


@pytest.mark.parametrize("blocked", [True, False])
def test_risk_snapshot_blocks_on_reward_risk(petr4, blocked):
    """A minimum reward/risk just above the computed one blocks; just below it, nothing blocks."""
    close, atr = petr4
    entry = float(close.iloc[-1])
    rr = entry * DEFAULT_LIMITS["profit_target_fraction"] / (DEFAULT_LIMITS["atr_stop_multiple"] * atr)
    # Volatility and drawdown limits wide open so reward/risk is the only rule in play.
    risk = limits(min_reward_risk=rr * (1.1 if blocked else 0.9), max_volatility=10.0, max_drawdown=1.0)
    snap = risk_snapshot(close, atr, risk)
    if blocked:
        assert any("reward/risk" in b for b in snap.blocks), snap.blocks
    else:
        assert snap.blocks == []


def test_risk_snapshot_blocks_without_atr(petr4):
    """No ATR: no stop, no shares, and the block says why."""
    close, _ = petr4
    for atr in (None, float("nan"), 0.0):
        snap = risk_snapshot(close, atr, limits())
        assert snap.stop is None and snap.shares == 0 and snap.max_loss == 0.0
        assert any("ATR unavailable" in b for b in snap.blocks)


def test_risk_snapshot_blocks_on_volatility_and_drawdown(petr4):
    """Limits below the measured volatility and drawdown add a block for each."""
    close, atr = petr4
    snap = risk_snapshot(close, atr, limits(max_volatility=0.01, max_drawdown=0.001))
    assert any(b.startswith("volatility") for b in snap.blocks)
    assert any(b.startswith("drawdown") for b in snap.blocks)


def test_risk_snapshot_rejects_non_positive_last_close():
    with pytest.raises(ValueError):
        risk_snapshot(pd.Series([10.0, 0.0]), 1.0, limits())


@pytest.mark.parametrize("bad", ["stop", "max_loss_fraction", "capital"])
def test_position_size_is_zero_when_any_input_is_not_finite(bad):
    """A NaN would make a cap comparison False and silently disable it."""
    args = {"capital": 100_000.0, "entry": 25.0, "stop": 24.0, "max_position_fraction": 0.1, "max_loss_fraction": 0.02}
    args[bad] = float("nan") if bad != "capital" else float("inf")
    assert position_size(**args) == 0
