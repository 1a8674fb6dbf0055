"""tools.performance: hand-computed metrics, annualisation refusal, bad inputs and hypothesis properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.performance import (
    SUMMARY_KEYS,
    UnderwaterSpell,
    cagr,
    calmar_ratio,
    drawdown_series,
    longest_underwater,
    risk_free_per_period,
    sharpe,
    sortino_ratio,
    summarize,
    total_return,
    why_not_annualised,
)
from tools.risk import max_drawdown, sharpe_ratio, simple_returns
from tools.trades import exposure, trade_stats

PROPERTY = settings(max_examples=60, deadline=None)


def curve(values, start: str = "2024-01-02") -> pd.Series:
    """An equity curve on consecutive business days."""
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype=float)


def trade(action: str, did: str, qty: int = 100, price: float = 10.0, profit: float | None = None) -> dict:
    """A trade dict shaped like the paper broker's."""
    return {"action": action, "ticker": "PETR4", "qty": qty, "price": price, "fees": 1.0, "profit": profit,
            "decision_id": did, "bar_date": "2024-01-02"}


# --------------------------------------------------------------------------- hand-computed

def test_small_curve_total_return_drawdown_and_underwater_spell():
    eq = curve([100, 110, 99, 120])
    # total return: 120 / 100 - 1 = 0.20
    assert total_return(eq) == pytest.approx(0.20)
    # running peaks 100, 110, 110, 120 -> drawdowns 0, 0, 1 - 99/110 = 0.10, 0
    assert drawdown_series(eq).tolist() == pytest.approx([0.0, 0.0, 0.10, 0.0])
    assert max_drawdown(eq) == pytest.approx(0.10)
    # one bar (the 99) below the 110 peak, recovered on the next bar
    spell = longest_underwater(eq)
    assert spell == UnderwaterSpell(1, peak=eq.index[1], start=eq.index[2], end=eq.index[2], recovered_on=eq.index[3])
    assert spell.recovered is True
    assert longest_underwater(eq).bars == 1


def test_longest_underwater_spell_counts_to_the_end_when_never_recovered():
    # spells below the 100 peak: bar 1 (1 bar, back to 100 on bar 2), then bars 3..5 (3 bars, never back)
    eq = curve([100, 90, 100, 95, 96, 97])
    spell = longest_underwater(eq)
    assert (spell.bars, spell.peak, spell.start, spell.end) == (3, eq.index[2], eq.index[3], eq.index[5])
    assert spell.recovered_on is None and spell.recovered is False
    # a curve that never falls has no spell
    assert longest_underwater(curve([1, 2, 2, 3])) == UnderwaterSpell(0)
    assert UnderwaterSpell(0).recovered is None


def test_sortino_by_hand():
    r = pd.Series([0.02, -0.01, 0.03, -0.02])
    # rf 0, 4 periods a year: mean = 0.02 / 4 = 0.005
    # downside over ALL 4 periods: sqrt((0 + 0.01^2 + 0 + 0.02^2) / 4) = sqrt(0.000125)
    # sortino = 0.005 / sqrt(0.000125) * sqrt(4) = 2 / sqrt(5) = 0.894427...
    assert sortino_ratio(r, 0.0, 4) == pytest.approx(2 / math.sqrt(5))
    # annual 1.01^4 - 1 -> exactly 0.01 per period: excess 0.01, -0.02, 0.02, -0.03, mean -0.005
    # downside sqrt((0.02^2 + 0.03^2) / 4) = sqrt(0.000325); sortino = -0.005 / sqrt(0.000325) * 2 = -0.5547...
    assert sortino_ratio(r, 1.01 ** 4 - 1, 4) == pytest.approx(-0.01 / math.sqrt(0.000325))


def test_sortino_is_none_without_a_period_below_target_or_without_two_returns():
    assert sortino_ratio(pd.Series([0.01, 0.02, 0.0]), 0.0, 252) is None
    assert sortino_ratio(pd.Series([-0.05]), 0.0, 252) is None


def test_cagr_of_exactly_two_years_at_ten_percent():
    # 505 bars = 504 daily returns = 2 years of 252; equity grows 10% a year: 100 -> 121
    eq = curve(100 * 1.1 ** (np.arange(505) / 252))
    assert eq.iloc[-1] == pytest.approx(121.0)
    assert cagr(eq) == pytest.approx(0.10)  # sqrt(121 / 100) - 1
    assert cagr(eq, min_years=2.0) == pytest.approx(0.10)  # exactly 2 years is not shorter than 2
    assert cagr(eq, min_years=2.5) is None
    # the same 504 returns counted as weekly periods span 504 / 52 years: 1.21 ** (52 / 504) - 1
    assert cagr(eq, periods_per_year=52) == pytest.approx(1.21 ** (52 / 504) - 1)


def test_calmar_is_cagr_over_max_drawdown():
    # 2 years (505 bars): flat at 100, one bar at 80 (drawdown 0.20), back to 100, last bar 121
    values = [100.0] * 505
    values[251], values[-1] = 80.0, 121.0
    eq = curve(values)
    # CAGR = sqrt(1.21) - 1 = 0.10; Calmar = 0.10 / 0.20 = 0.5
    assert calmar_ratio(eq) == pytest.approx(0.5)
    assert longest_underwater(eq).bars == 1
    assert calmar_ratio(curve(100 * 1.1 ** (np.arange(505) / 252))) is None  # never fell: no drawdown to divide by
    assert calmar_ratio(eq, min_years=3.0) is None  # CAGR refused


def test_trade_statistics_by_hand():
    trades = [
        trade("open", "d1", 100, 30.0), trade("close_take_profit", "d1", 100, 33.0, profit=300.0),  # +300 on 3000
        trade("open", "d2", 200, 50.0), trade("close_stop", "d2", 200, 47.5, profit=-500.0),  # -500 on 10000
        trade("open", "d3", 100, 20.0), trade("close_end", "d3", 100, 21.0, profit=100.0),  # +100 on 2000
        trade("open", "d4", 100, 10.0), trade("close_stop", "d4", 100, 8.0, profit=-200.0),  # -200 on 1000
        trade("open", "d5", 100, 99.0),  # still open: not a round trip
    ]
    s = trade_stats(trades)
    assert s.trades == 4
    assert s.win_rate == pytest.approx(0.5)  # 2 of 4 closes made money
    assert s.profit_factor == pytest.approx(400 / 700)  # (300 + 100) / (500 + 200)
    assert s.avg_trade == pytest.approx(-75.0)  # (300 - 500 + 100 - 200) / 4
    assert (s.best_trade, s.worst_trade) == (300.0, -500.0)
    assert s.avg_trade_return == pytest.approx(-0.025)  # (0.10 - 0.05 + 0.05 - 0.20) / 4


def test_trade_statistics_edge_cases():
    no_loss = trade_stats([trade("open", "a"), trade("close_take_profit", "a", profit=50.0),
                           trade("open", "b"), trade("close_end", "b", profit=0.0)])
    assert no_loss.profit_factor is None  # no losing trade: documented as None, not inf
    assert no_loss.win_rate == pytest.approx(0.5)  # a zero-profit close is a trade but not a win
    assert trade_stats([]).trades == 0 and trade_stats([]).win_rate is None
    orphan = trade_stats([trade("close_stop", "x", profit=-10.0)])  # its open is not in the list
    assert orphan.trades == 1 and orphan.avg_trade == -10.0 and orphan.avg_trade_return is None


def test_exposure_is_the_fraction_of_bars_with_a_position():
    assert exposure(pd.Series([0, 1, 2, 0, 1])) == pytest.approx(3 / 5)
    assert exposure(pd.Series([True, False, False, False])) == pytest.approx(1 / 4)


# --------------------------------------------------------------------------- risk-free

def test_risk_free_series_is_forward_filled_and_converted_geometrically():
    rates = pd.Series([0.21, 0.44], index=pd.to_datetime(["2024-01-01", "2024-01-03"]))
    index = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"])
    # 2 periods a year: 1.21 ** 0.5 - 1 = 0.1 (the Jan 1 rate carried to Jan 2), 1.44 ** 0.5 - 1 = 0.2
    assert risk_free_per_period(index, rates, 2).tolist() == pytest.approx([0.1, 0.2, 0.2])
    assert risk_free_per_period(index, 0.21, 2).tolist() == pytest.approx([0.1, 0.1, 0.1])


def test_constant_rate_and_equivalent_series_give_the_same_sharpe():
    rng = np.random.default_rng(7)
    eq = curve(100 * np.cumprod(1 + rng.normal(0.0005, 0.01, 300)))
    r = simple_returns(eq)
    monthly = pd.Series(0.1075, index=pd.date_range("2023-12-01", "2025-12-01", freq="MS"))
    by_constant, by_series = sharpe(r, 0.1075), sharpe(r, monthly)
    assert by_constant == pytest.approx(by_series, rel=1e-12)
    assert by_constant == pytest.approx(sharpe_ratio(r, 0.1075), rel=1e-12)  # the one formula in tools.risk
    assert by_constant != pytest.approx(sharpe(r, 0.0))  # the rate is actually applied
    a, b = summarize(eq, [], risk_free=0.1075), summarize(eq, [], risk_free=monthly)
    assert (a["sharpe"], a["sortino"]) == (b["sharpe"], b["sortino"])
    assert a["sharpe"] == pytest.approx(by_constant, abs=1e-6)  # the summary nets the rate out too
    assert a["sortino"] == pytest.approx(sortino_ratio(r, 0.1075), abs=1e-6)


def test_a_varying_rate_changes_sharpe_by_date():
    eq = curve(100 * 1.001 ** np.arange(300) * (1 + 0.01 * np.sin(np.arange(300))))
    r = simple_returns(eq)
    step = pd.Series([0.0, 0.5], index=[eq.index[0], eq.index[150]])  # 0% then 50% a year from bar 150
    expected = sharpe_ratio(r - np.where(r.index >= eq.index[150], 1.5 ** (1 / 252) - 1, 0.0), 0.0)
    assert sharpe(r, step) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- summary

def test_summary_of_a_two_year_curve():
    values = [100.0] * 505
    values[251], values[-1] = 80.0, 121.0
    eq = curve(values)
    trades = [trade("open", "d1", 100, 30.0), trade("close_stop", "d1", profit=-60.0)]
    positions = pd.Series([1] * 101 + [0] * 404, index=eq.index)
    s = summarize(eq, trades, positions)
    assert tuple(s) == SUMMARY_KEYS
    json.dumps(s, allow_nan=False)
    assert (s["start"], s["end"], s["bars"], s["years"]) == ("2024-01-02", eq.index[-1].date().isoformat(), 505, 2.0)
    assert s["annualised"] is True and s["why_not_annualised"] is None
    assert (s["total_return"], s["cagr"], s["max_drawdown"], s["calmar"]) == pytest.approx((0.21, 0.10, 0.20, 0.5))
    assert s["max_drawdown_duration_bars"] == 1 and s["underwater_recovered"] is True
    assert s["underwater_start"] == s["underwater_end"] == eq.index[251].date().isoformat()
    assert s["sharpe"] == pytest.approx(sharpe_ratio(simple_returns(eq)), abs=1e-6)
    assert s["sortino"] is not None and s["volatility"] is not None
    assert (s["trades"], s["win_rate"], s["profit_factor"], s["avg_trade"]) == (1, 0.0, 0.0, -60.0)
    assert s["avg_trade_return"] == pytest.approx(-0.02)  # -60 / (100 x 30)
    assert s["exposure"] == pytest.approx(101 / 505, abs=1e-6)


def test_short_window_refuses_to_annualise_but_reports_the_rest():
    eq = curve([100.0] * 50 + [90.0] * 50 + [105.0])  # 101 bars = 100 returns = 100 / 252 = 0.397 years
    s = summarize(eq, [trade("open", "a"), trade("close_end", "a", profit=25.0)], pd.Series(1, index=eq.index))
    assert s["annualised"] is False
    assert s["why_not_annualised"] == ("window of 0.397 years (100 returns at 252 per year) is shorter than "
                                       "the 1-year minimum")
    assert all(s[k] is None for k in ("cagr", "sharpe", "sortino", "calmar", "volatility"))
    assert s["total_return"] == pytest.approx(0.05) and s["max_drawdown"] == pytest.approx(0.10)
    assert s["max_drawdown_duration_bars"] == 50 and s["underwater_recovered"] is True
    assert (s["trades"], s["win_rate"], s["exposure"]) == (1, 1.0, 1.0)
    # the same window annualises once the minimum is lowered
    assert summarize(eq, [], min_years=0.25)["cagr"] == pytest.approx(1.05 ** (252 / 100) - 1, abs=1e-6)
    assert why_not_annualised(1) == "window of 1 bar(s) has no return to annualise"


def test_single_bar_curve_is_measured_without_annualising():
    s = summarize(curve([100.0]), [], min_years=0.0)
    assert s["total_return"] == 0.0 and s["max_drawdown"] == 0.0 and s["annualised"] is False
    assert s["years"] == 0.0 and s["exposure"] is None


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("equity, message", [
    ([100.0, 101.0], "must be a pandas Series"),
    (pd.Series([], dtype=float, index=pd.DatetimeIndex([])), "empty"),
    (pd.Series([100.0, 101.0]), "DatetimeIndex"),
    (pd.Series(["a", "b"], index=pd.bdate_range("2024-01-02", periods=2)), "numeric"),
    (pd.Series([True, False], index=pd.bdate_range("2024-01-02", periods=2)), "numeric"),
    (pd.Series([1.0, 2.0], index=pd.to_datetime(["2024-01-03", "2024-01-02"])), "sorted ascending"),
    (pd.Series([1.0, 2.0], index=pd.to_datetime(["2024-01-02", "2024-01-02"])), "more than one value"),
    (curve([100.0, np.nan, 101.0]), "missing or infinite"),
    (curve([100.0, np.inf]), "missing or infinite"),
    (curve([100.0, 0.0, 101.0]), "must be positive"),
    (curve([100.0, -5.0]), "must be positive"),
])
def test_bad_equity_is_refused_with_a_reason(equity, message):
    with pytest.raises(ValueError, match=message):
        summarize(equity, [])
    with pytest.raises(ValueError, match=message):
        drawdown_series(equity)


EQ3 = curve([100.0, 101.0, 102.0])


@pytest.mark.parametrize("call, message", [
    (lambda: summarize(EQ3, [trade("close_stop", "a", profit=None)]), "finite numeric profit"),
    (lambda: summarize(EQ3, [trade("close_stop", "a", profit=float("nan"))]), "finite numeric profit"),
    (lambda: summarize(EQ3, [trade("buy", "a")]), "unknown action 'buy'"),
    (lambda: summarize(EQ3, [trade("open", "a"), trade("open", "a")]), "second open"),
    (lambda: summarize(EQ3, {"action": "open"}), "list of trade dicts"),
    (lambda: summarize(EQ3, [], pd.Series([0, 1])), "equity's dates"),
    (lambda: summarize(EQ3, [], pd.Series([0, -1, 1], index=EQ3.index)), "non-negative"),
    (lambda: summarize(EQ3, [], pd.Series([0, np.nan, 1], index=EQ3.index)), "non-negative"),
    (lambda: exposure(pd.Series([], dtype=int)), "empty"),
    (lambda: summarize(EQ3, [], risk_free=-1.5), "above -100%"),
    (lambda: summarize(EQ3, [], risk_free=float("nan")), "above -100%"),
    (lambda: summarize(EQ3, [], risk_free="0.1"), "annual rate"),
    (lambda: summarize(EQ3, [], risk_free=pd.Series([0.1], index=[EQ3.index[2]])), "starts 2024-01-04"),
    (lambda: summarize(EQ3, [], risk_free=pd.Series([0.1, 0.2])), "indexed by date"),
    (lambda: summarize(EQ3, [], periods_per_year=0), "periods_per_year"),
    (lambda: summarize(EQ3, [], min_years=-1), "min_years"),
])
def test_bad_trades_positions_rates_and_parameters_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- properties

positive = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
equity_lists = st.lists(positive, min_size=1, max_size=80)


@PROPERTY
@given(equity_lists)
def test_drawdowns_are_fractions_and_zero_at_new_highs(values):
    eq = curve(values)
    dd = drawdown_series(eq)
    assert ((dd >= 0) & (dd <= 1)).all()
    new_high = eq >= eq.cummax()
    assert (dd[new_high] == 0).all()
    assert 0.0 <= max_drawdown(eq) <= 1.0
    assert dd.max() == pytest.approx(max_drawdown(eq), abs=1e-12)
    assert 0 <= longest_underwater(eq).bars <= int((dd > 0).sum())


@PROPERTY
@given(
    values=equity_lists,
    profits=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=6),
    ppy=st.sampled_from([4, 12, 52, 252]),
    min_years=st.sampled_from([0.0, 0.5, 1.0]),
    rate=st.floats(min_value=-0.05, max_value=0.5),
    data=st.data(),
)
def test_summary_is_always_finite_json(values, profits, ppy, min_years, rate, data):
    eq = curve(values)
    trades = [t for i, p in enumerate(profits) for t in (trade("open", f"d{i}"), trade("close_end", f"d{i}", profit=p))]
    positions = pd.Series(data.draw(st.lists(st.integers(0, 3), min_size=len(values), max_size=len(values))),
                          index=eq.index)
    s = summarize(eq, trades, positions, risk_free=rate, periods_per_year=ppy, min_years=min_years)
    json.dumps(s, allow_nan=False)  # raises on NaN or inf
    assert all(math.isfinite(v) for v in s.values() if isinstance(v, float))
    assert s["annualised"] == (s["why_not_annualised"] is None)


@PROPERTY
@given(values=equity_lists, scale=st.floats(min_value=1e-3, max_value=1e3), ppy=st.sampled_from([12, 252]))
def test_scaling_the_equity_changes_nothing(values, scale, ppy):
    eq = curve(values)
    positions = pd.Series(np.arange(len(values)) % 2, index=eq.index)
    a = summarize(eq, [], positions, risk_free=0.1, periods_per_year=ppy, min_years=0.0)
    b = summarize(eq * scale, [], positions, risk_free=0.1, periods_per_year=ppy, min_years=0.0)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float) and isinstance(b[key], float):
            assert b[key] == pytest.approx(a[key], rel=1e-6, abs=2e-6), key
        else:
            assert a[key] == b[key], key
