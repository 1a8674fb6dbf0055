"""The original guide's units: MAX_POSITION_SIZE in shares, MAX_LOSS_PER_TRADE and PROFIT_TARGET in BRL,
beside the fraction limits (MAX_POSITION_FRACTION, MAX_LOSS_FRACTION, PROFIT_TARGET_FRACTION).
The tighter limit binds, the snapshot names it, and a value in the other unit is refused naming both keys."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from tests.conftest import make_settings
from tools.risk import (
    RiskLimits,
    position_size,
    risk_snapshot,
    size_position,
    take_profit_target,
)

EPS = 1e-6
PROPERTY = settings(max_examples=300, deadline=None)
LIMITS = dict(capital=100_000.0, max_position_fraction=0.10, max_loss_fraction=0.02, profit_target_fraction=0.06,
              atr_stop_multiple=1.5, min_reward_risk=0.0, max_volatility=10.0, max_drawdown=1.0,
              lookback_bars=252, risk_free_rate=0.10, lot_size=100)


def error_for(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as err:
        make_settings(environ=environ)
    return str(err.value)


# --------------------------------------------------------------------------- config: units and names

def test_the_guide_units_load_as_shares_and_brl():
    s = make_settings(environ={"MAX_POSITION_SIZE": "1000", "MAX_LOSS_PER_TRADE": "500", "PROFIT_TARGET": "1000"})
    assert (s.risk.max_position_size, s.risk.max_loss_per_trade, s.risk.profit_target) == (1000, 500.0, 1000.0)
    assert s.risk.max_position_fraction == 0.10  # the fraction limits keep their own names and defaults


@pytest.mark.parametrize(("key", "value", "other"), [
    ("MAX_POSITION_SIZE", "0.02", "MAX_POSITION_FRACTION"),
    ("MAX_POSITION_SIZE", "0.10", "MAX_POSITION_FRACTION"),
    ("MAX_LOSS_PER_TRADE", "0.02", "MAX_LOSS_FRACTION"),
    ("PROFIT_TARGET", "0.06", "PROFIT_TARGET_FRACTION"),
    ("MAX_POSITION_FRACTION", "1000", "MAX_POSITION_SIZE"),
    ("MAX_LOSS_FRACTION", "500", "MAX_LOSS_PER_TRADE"),
    ("PROFIT_TARGET_FRACTION", "1000", "PROFIT_TARGET"),
])
def test_a_value_in_the_other_unit_names_both_keys(key, value, other):
    msg = error_for({key: value})
    assert f"(env {key})" in msg and other in msg, msg


@pytest.mark.parametrize(("key", "value"), [("MAX_POSITION_SIZE", "150.5"), ("MAX_POSITION_SIZE", "-100"),
                                            ("MAX_LOSS_PER_TRADE", "-5"), ("MAX_LOSS_PER_TRADE", "nan"),
                                            ("MAX_LOSS_FRACTION", "0.7"), ("MAX_POSITION_FRACTION", "0")])
def test_values_wrong_in_any_unit_are_refused(key, value):
    assert f"(env {key})" in error_for({key: value})


# --------------------------------------------------------------------------- tools/risk.py: sizing

@pytest.mark.parametrize(("caps", "expected", "bound"), [
    # fractions alone: 10_000 / 25 = 400 by value, 2_000 / 1 = 2_000 by loss
    (dict(), 400, "MAX_POSITION_FRACTION"),
    # the guide's 1000 shares is looser than the fraction: the fraction still binds
    (dict(max_shares=1000), 400, "MAX_POSITION_FRACTION"),
    (dict(max_shares=300), 300, "MAX_POSITION_SIZE"),
    (dict(max_shares=250), 200, "MAX_POSITION_SIZE"),  # whole lots below the share cap
    # 500 BRL at 1 BRL of risk a share: 500 shares, looser than 400; 250 BRL: 250 -> 200
    (dict(max_loss_brl=500), 400, "MAX_POSITION_FRACTION"),
    (dict(max_loss_brl=250), 200, "MAX_LOSS_PER_TRADE"),
    (dict(max_shares=1000, max_loss_brl=99), 0, None),  # not one lot fits
])
def test_the_tighter_cap_binds_and_is_named(caps, expected, bound):
    assert size_position(100_000, 25.0, 24.0, 0.10, 0.02, 100, **caps) == (expected, bound)


def test_the_brl_profit_target_is_the_whole_position_gain():
    price, bound = take_profit_target(25.0, 400, 0.06, profit_target_brl=200)  # 0.50 a share, nearer than 1.50
    assert (price, bound) == (pytest.approx(25.5), "PROFIT_TARGET")
    assert take_profit_target(25.0, 400, 0.06, profit_target_brl=1000)[1] == "PROFIT_TARGET_FRACTION"
    assert take_profit_target(25.0, 400, 0.06)[1] == "PROFIT_TARGET_FRACTION"


@PROPERTY
@given(
    capital=st.floats(min_value=0.0, max_value=1e9),
    entry=st.floats(min_value=1e-3, max_value=1e5),
    stop_fraction=st.floats(min_value=-0.5, max_value=1.5),
    value_fraction=st.floats(min_value=0.0, max_value=1.0),
    loss_fraction=st.floats(min_value=0.0, max_value=0.5),
    max_shares=st.one_of(st.none(), st.integers(min_value=1, max_value=10**7)),
    max_loss_brl=st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e8)),
    lot_size=st.sampled_from([1, 10, 100, 1000]),
)
def test_sizing_never_breaks_any_of_the_four_caps(capital, entry, stop_fraction, value_fraction, loss_fraction,
                                                  max_shares, max_loss_brl, lot_size):
    stop = entry * stop_fraction
    shares, bound = size_position(capital, entry, stop, value_fraction, loss_fraction, lot_size,
                                  max_shares=max_shares, max_loss_brl=max_loss_brl)
    assert shares >= 0 and shares % lot_size == 0
    assert shares * entry <= capital * value_fraction + EPS
    assert shares * (entry - stop) <= capital * loss_fraction + EPS
    if max_shares is not None:
        assert shares <= max_shares
    if max_loss_brl is not None:
        assert shares * (entry - stop) <= max_loss_brl + EPS
    assert (bound is None) == (shares == 0)
    assert shares == position_size(capital, entry, stop, value_fraction, loss_fraction, lot_size,
                                   max_shares=max_shares, max_loss_brl=max_loss_brl)
    if shares:  # one more lot would break the cap that bound
        more = shares + lot_size
        broken = {"MAX_POSITION_FRACTION": more * entry > capital * value_fraction,
                  "MAX_LOSS_FRACTION": more * (entry - stop) > capital * loss_fraction,
                  "MAX_POSITION_SIZE": max_shares is not None and more > max_shares,
                  "MAX_LOSS_PER_TRADE": max_loss_brl is not None and more * (entry - stop) > max_loss_brl}
        assert broken[bound] or any(broken.values())


@PROPERTY
@given(entry=st.floats(min_value=1.0, max_value=1e4), shares=st.integers(min_value=0, max_value=10**6),
       fraction=st.floats(min_value=1e-3, max_value=5.0),
       brl=st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e7)))
def test_the_target_is_the_nearer_of_the_two(entry, shares, fraction, brl):
    price, bound = take_profit_target(entry, shares, fraction, brl, lot_size=100)
    by_fraction = entry * (1 + fraction)
    assert price > entry and price <= by_fraction + EPS
    if brl is not None:
        assert price <= entry + brl / max(shares, 100) + EPS
    assert bound == ("PROFIT_TARGET" if brl is not None and price < by_fraction else "PROFIT_TARGET_FRACTION")


def test_the_snapshot_records_which_limits_bound():
    closes = pd.Series([25.0] * 30)
    loose = risk_snapshot(closes, 1.0, RiskLimits(**LIMITS))  # stop 23.5: value 400 sh, loss 1_333 sh
    assert (loose.shares, loose.size_bound, loose.target_bound) == (400, "MAX_POSITION_FRACTION",
                                                                   "PROFIT_TARGET_FRACTION")
    guide = risk_snapshot(closes, 1.0, RiskLimits(**LIMITS, max_position_size=1000, max_loss_per_trade=300,
                                                  profit_target=100))
    assert (guide.shares, guide.size_bound) == (200, "MAX_LOSS_PER_TRADE")  # 300 / 1.5 = 200 shares
    assert guide.max_loss <= 300 + EPS
    assert guide.target_bound == "PROFIT_TARGET" and guide.take_profit == pytest.approx(25.5)  # 100 BRL / 200 sh
    assert guide.reward_risk == pytest.approx(0.5 / 1.5, rel=1e-5)


def test_settings_reach_the_snapshot_unchanged():
    s = make_settings(environ={"MAX_POSITION_SIZE": "100", "MAX_LOSS_PER_TRADE": "500", "PROFIT_TARGET": "1000"})
    snap = risk_snapshot(pd.Series([25.0] * 30), 1.0, RiskLimits(**s.risk.model_dump()))
    assert snap.shares == 100 and snap.size_bound == "MAX_POSITION_SIZE"
    assert math.isclose(snap.take_profit, 25.0 * 1.06)  # 1000 BRL / 100 sh = 10 a share: the 6% is nearer


# --------------------------------------------------------------------------- the trader: adds within the share cap

def test_pyramiding_adds_stop_at_max_position_size_shares(tmp_path):
    from tests.test_loop import setup_loop

    loop, days, _ = setup_loop(tmp_path, tickers=("PETR4",), overrides={
        ("broker", "allow_pyramiding"): True, ("risk", "max_position_fraction"): 1.0,
        ("risk", "max_loss_fraction"): 0.5, ("risk", "max_position_size"): 300,
        ("risk", "max_loss_per_trade"): 200.0})  # the BRL cap sizes each entry below 300 shares
    for _ in range(4):
        loop.run_cycle()
        days.advance()
    first, add = loop.trader.broker.orders("filled")[:2]
    assert first["qty"] + add["qty"] == 300 and add["qty"] < first["qty"]  # the add was cut to the shares left
    records = list(loop.deps.sink.records())
    assert records[0]["risk"]["size_bound"] == "MAX_LOSS_PER_TRADE"
    assert any(r["decision"] == "HOLD" and "size cap" in r["reason"] for r in records)
