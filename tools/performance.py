"""Returns and risk ratios of an equity curve in plain code: does the strategy beat simple baselines after costs?

Everything a backtest report states about returns and risk is computed here from the equity curve,
never by an LLM; trade statistics come from ``tools.trades``. The Sharpe formula, simple returns,
the drawdown and volatility come from ``tools.risk``; this module only adds what it lacks.

Conventions (chosen once, so every curve in a report is measured the same way):

- Time is counted in return periods: an equity curve of ``n`` bars spans ``n - 1`` periods, so
  ``years = (n - 1) / periods_per_year`` (505 daily bars = 504 returns = exactly 2 years).
- Annualised numbers (CAGR, Sharpe, Sortino, Calmar, volatility) are refused (None, with the
  reason in ``why_not_annualised``) for windows shorter than ``min_years``: a few good weeks
  compounded to a year is a fiction.
- The risk-free rate is an ANNUAL rate, constant or a dated series (CDI/Selic), converted per
  period geometrically, ``(1 + r) ** (1 / periods_per_year) - 1``, exactly as ``risk.sharpe_ratio``
  does; a series is forward-filled onto the return dates (the rate in force on each return's date).
- Undefined numbers are None, never NaN or inf, so the summary is valid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from tools.risk import (
    TRADING_DAYS,
    annualized_volatility,
    drawdowns,
    max_drawdown,
    sharpe_ratio,
    simple_returns,
)
from tools.trades import exposure, trade_stats

MIN_YEARS_TO_ANNUALISE = 1.0
# A bar counts as underwater when it is more than this fraction below its running peak: float
# noise (one ulp) is not a drawdown, and rescaling a curve must not create or end a spell.
UNDERWATER_TOLERANCE = 1e-12
_DEVIATION_FLOOR = 1e-12  # the same "no variation" floor as risk.sharpe_ratio

SUMMARY_KEYS = (
    "start", "end", "bars", "years", "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_duration_bars", "underwater_start", "underwater_end", "underwater_recovered", "volatility",
    "trades", "win_rate", "profit_factor", "avg_trade", "avg_trade_return", "best_trade", "worst_trade",
    "exposure", "annualised", "why_not_annualised",
)


# --------------------------------------------------------------------------- validation

def _check_periods(periods_per_year: float) -> float:
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, Real) \
            or not math.isfinite(periods_per_year) or periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year!r}")
    return float(periods_per_year)


def _check_min_years(min_years: float) -> float:
    if isinstance(min_years, bool) or not isinstance(min_years, Real) or not math.isfinite(min_years) or min_years < 0:
        raise ValueError(f"min_years must be a non-negative number of years, got {min_years!r}")
    return float(min_years)


def validate_equity(equity: pd.Series) -> pd.Series:
    """The equity curve as floats, or a ValueError naming what is wrong with it.

    A metric computed on a curve with gaps, repeats, zeros or an unsorted index is silently
    wrong, so each of those is refused rather than repaired.
    """
    if not isinstance(equity, pd.Series):
        raise ValueError(f"equity must be a pandas Series, got {type(equity).__name__}")
    if equity.empty:
        raise ValueError("equity is empty: there is nothing to measure")
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise ValueError(f"equity must be indexed by date (a DatetimeIndex), got {type(equity.index).__name__}")
    if pd.api.types.is_bool_dtype(equity.dtype) or not pd.api.types.is_numeric_dtype(equity.dtype):
        raise ValueError(f"equity must be numeric, got dtype {equity.dtype}")
    if equity.index.hasnans:
        raise ValueError("equity has a missing date (NaT) in its index")
    if equity.index.has_duplicates:
        dup = equity.index[equity.index.duplicated()][0]
        raise ValueError(f"equity has more than one value for {dup}")
    if not equity.index.is_monotonic_increasing:
        at = int(np.flatnonzero(np.diff(equity.index.asi8) < 0)[0]) + 1
        raise ValueError(f"equity dates must be sorted ascending: {equity.index[at]} comes after "
                         f"{equity.index[at - 1]}")
    values = equity.astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        raise ValueError(f"equity has {int(bad.sum())} missing or infinite value(s), first at {values.index[bad][0]}")
    nonpos = values.to_numpy() <= 0
    if nonpos.any():
        first = values.index[nonpos][0]
        raise ValueError(f"equity must be positive: {int(nonpos.sum())} value(s) <= 0, "
                         f"first {values[first]} at {first}")
    return values


def _check_returns(returns: pd.Series) -> pd.Series:
    if not isinstance(returns, pd.Series):
        raise ValueError(f"returns must be a pandas Series, got {type(returns).__name__}")
    if pd.api.types.is_bool_dtype(returns.dtype) or not pd.api.types.is_numeric_dtype(returns.dtype):
        raise ValueError(f"returns must be numeric, got dtype {returns.dtype}")
    r = returns.astype(float).dropna()
    if np.isinf(r.to_numpy()).any():
        raise ValueError("returns contain an infinite value")
    return r


# --------------------------------------------------------------------------- window

def window_years(bars: int, periods_per_year: float = TRADING_DAYS) -> float:
    """Years spanned by ``bars`` equity points: ``bars - 1`` return periods."""
    return max(int(bars) - 1, 0) / _check_periods(periods_per_year)


def why_not_annualised(bars: int, periods_per_year: float = TRADING_DAYS,
                       min_years: float = MIN_YEARS_TO_ANNUALISE) -> str | None:
    """The reason a window of ``bars`` equity points is too short to annualise, or None if it is not."""
    min_years = _check_min_years(min_years)
    years = window_years(bars, periods_per_year)
    if bars < 2:
        return f"window of {bars} bar(s) has no return to annualise"
    if years < min_years:
        return (f"window of {years:.3g} years ({bars - 1} returns at {periods_per_year:g} per year) is shorter "
                f"than the {min_years:g}-year minimum")
    return None


# --------------------------------------------------------------------------- drawdown

def drawdown_series(equity: pd.Series) -> pd.Series:
    """``risk.drawdowns`` of a validated equity curve, by date: fraction below the running peak (0 at new highs)."""
    values = validate_equity(equity)
    return pd.Series(drawdowns(values.to_numpy()), index=values.index, name="drawdown")


@dataclass(frozen=True)
class UnderwaterSpell:
    """The longest run of consecutive bars below a previous peak.

    ``start``/``end`` are the first and last underwater bars, ``peak`` the bar it fell from and
    ``recovered_on`` the first bar back at the peak (None when the curve ends underwater).
    """

    bars: int
    peak: pd.Timestamp | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    recovered_on: pd.Timestamp | None = None

    @property
    def recovered(self) -> bool | None:
        return None if self.bars == 0 else self.recovered_on is not None


def longest_underwater(equity: pd.Series) -> UnderwaterSpell:
    """The longest underwater spell, counted until recovery or until the end if never recovered."""
    dd = drawdown_series(equity)
    under = dd.to_numpy() > UNDERWATER_TOLERANCE
    if not under.any():
        return UnderwaterSpell(0)
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # stops are exclusive
    i = int(np.argmax(stops - starts))  # the first of the longest
    start, stop = int(starts[i]), int(stops[i])
    idx = dd.index
    return UnderwaterSpell(bars=stop - start, peak=idx[start - 1], start=idx[start], end=idx[stop - 1],
                           recovered_on=idx[stop] if stop < len(idx) else None)


# --------------------------------------------------------------------------- returns

def total_return(equity: pd.Series) -> float:
    values = validate_equity(equity)
    return float(values.iloc[-1] / values.iloc[0] - 1.0)


def cagr(equity: pd.Series, periods_per_year: float = TRADING_DAYS,
         min_years: float = MIN_YEARS_TO_ANNUALISE) -> float | None:
    """Compound annual growth over ``(bars - 1) / periods_per_year`` years.

    None for a window shorter than ``min_years`` (see ``why_not_annualised``) or when the
    annualised figure overflows a float.
    """
    values = validate_equity(equity)
    if why_not_annualised(len(values), periods_per_year, min_years) is not None:
        return None
    years = window_years(len(values), periods_per_year)
    try:
        value = math.exp(math.log(values.iloc[-1] / values.iloc[0]) / years) - 1.0
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def risk_free_per_period(index: pd.Index, rate: float | pd.Series,
                         periods_per_year: float = TRADING_DAYS) -> pd.Series:
    """Per-period risk-free return on each date of ``index``, from an ANNUAL rate.

    ``rate`` is a constant or a Series of annual rates by date (CDI/Selic), forward-filled onto
    ``index``. Refuses a series that starts after ``index`` does: a guessed rate is not a rate.
    """
    ppy = _check_periods(periods_per_year)
    if isinstance(rate, pd.Series):
        if not isinstance(rate.index, pd.DatetimeIndex):
            raise ValueError(f"a risk-free series must be indexed by date, got {type(rate.index).__name__}")
        if not isinstance(index, pd.DatetimeIndex):
            raise ValueError("a dated risk-free series needs dated returns (a DatetimeIndex)")
        if pd.api.types.is_bool_dtype(rate.dtype) or not pd.api.types.is_numeric_dtype(rate.dtype):
            raise ValueError(f"risk-free rates must be numeric, got dtype {rate.dtype}")
        if (rate.index.tz is None) != (index.tz is None):
            raise ValueError("the risk-free series and the equity dates must both be timezone-aware or both naive")
        annual = rate.astype(float).dropna()
        annual = annual[annual.index.notna()]
        if annual.empty:
            raise ValueError("the risk-free series has no rate")
        if annual.index.has_duplicates:
            dup = annual.index[annual.index.duplicated()][0]
            raise ValueError(f"the risk-free series has more than one rate for {dup}")
        annual = annual.sort_index()
        if len(index) and index.min() < annual.index[0]:
            raise ValueError(f"the risk-free series starts {annual.index[0].date()}, after the first date to "
                             f"measure ({index.min().date()}): extend it back")
        annual = annual.reindex(index, method="ffill") if len(index) else pd.Series(dtype=float, index=index)
    else:
        if isinstance(rate, bool) or not isinstance(rate, Real):
            raise ValueError(f"risk_free must be an annual rate (float) or a dated Series, got {type(rate).__name__}")
        annual = pd.Series(float(rate), index=index, dtype=float)
    values = annual.to_numpy()
    if not np.isfinite(values).all() or (values <= -1.0).any():
        raise ValueError("risk-free annual rates must be finite and above -100% (0.1075 for 10.75%)")
    return ((1.0 + annual) ** (1.0 / ppy) - 1.0).rename("risk_free")


def excess_returns(returns: pd.Series, risk_free: float | pd.Series = 0.0,
                   periods_per_year: float = TRADING_DAYS) -> pd.Series:
    """Returns minus the per-period risk-free return on the same dates."""
    r = _check_returns(returns)
    return r - risk_free_per_period(r.index, risk_free, periods_per_year)


def sharpe(returns: pd.Series, risk_free: float | pd.Series = 0.0,
           periods_per_year: float = TRADING_DAYS) -> float | None:
    """``risk.sharpe_ratio`` with a risk-free rate that may vary by date.

    The excess returns go through ``risk.sharpe_ratio`` with a zero rate, so there is one Sharpe
    formula in the project. None when undefined (fewer than two returns, or no variation).
    """
    return sharpe_ratio(excess_returns(returns, risk_free, periods_per_year), 0.0, _check_periods(periods_per_year))


def sortino_ratio(returns: pd.Series, risk_free_rate: float | pd.Series = 0.0,
                  periods_per_year: float = TRADING_DAYS) -> float | None:
    """Annualised mean excess return over downside deviation.

    Downside deviation is taken over ALL periods with the risk-free return as the target:
    ``sqrt(mean(min(excess, 0) ** 2))``. None with fewer than two returns, or when no period
    fell below the target (the ratio would be infinite: it says nothing about risk).
    """
    ppy = _check_periods(periods_per_year)
    excess = excess_returns(returns, risk_free_rate, ppy).to_numpy()
    if excess.size < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if not math.isfinite(downside) or downside <= _DEVIATION_FLOOR:
        return None
    value = float(np.mean(excess)) / downside * math.sqrt(ppy)
    return value if math.isfinite(value) else None


def calmar_ratio(equity: pd.Series, periods_per_year: float = TRADING_DAYS,
                 min_years: float = MIN_YEARS_TO_ANNUALISE) -> float | None:
    """CAGR over max drawdown, on the whole window. None if CAGR is refused or nothing ever fell."""
    growth = cagr(equity, periods_per_year, min_years)
    mdd = max_drawdown(validate_equity(equity))
    if growth is None or mdd <= 0:
        return None
    value = growth / mdd
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- summary

def _clean(value: float | None, digits: int = 6) -> float | None:
    """Rounded, and None for anything NaN or infinite: the summary must be valid JSON."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _day(ts: pd.Timestamp | None) -> str | None:
    if ts is None:
        return None
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def summarize(equity: pd.Series, trades: Sequence[Mapping[str, Any]], open_positions: pd.Series | None = None,
              risk_free: float | pd.Series = 0.0, periods_per_year: float = TRADING_DAYS,
              min_years: float = MIN_YEARS_TO_ANNUALISE) -> dict[str, Any]:
    """Every metric of one equity curve, flat and JSON-ready (keys: ``SUMMARY_KEYS``).

    Annualised metrics are None, with ``why_not_annualised`` saying why, for windows shorter
    than ``min_years``; total return, drawdown and trade statistics are always reported.
    ``open_positions`` must share the equity's dates; without it exposure is None.
    """
    values = validate_equity(equity)
    ppy, min_years = _check_periods(periods_per_year), _check_min_years(min_years)
    if isinstance(open_positions, pd.Series) and not open_positions.index.equals(values.index):
        raise ValueError(f"open_positions must have the equity's dates ({len(values)} bars from "
                         f"{_day(values.index[0])}), got {len(open_positions)} bars")
    stats = trade_stats(trades)
    exp = exposure(open_positions) if open_positions is not None else None
    returns = simple_returns(values)
    excess = excess_returns(returns, risk_free, ppy)  # validates the rate even when nothing is annualised
    reason = why_not_annualised(len(values), ppy, min_years)
    spell = longest_underwater(values)
    annualised = reason is None
    return {
        "start": _day(values.index[0]),
        "end": _day(values.index[-1]),
        "bars": int(len(values)),
        "years": _clean(window_years(len(values), ppy), 4),
        "total_return": _clean(total_return(values)),
        "cagr": _clean(cagr(values, ppy, min_years)),
        "sharpe": _clean(sharpe(returns, risk_free, ppy)) if annualised else None,
        "sortino": _clean(sortino_ratio(excess, 0.0, ppy)) if annualised else None,
        "calmar": _clean(calmar_ratio(values, ppy, min_years)),
        "max_drawdown": _clean(max_drawdown(values)),
        "max_drawdown_duration_bars": spell.bars,
        "underwater_start": _day(spell.start),
        "underwater_end": _day(spell.end),
        "underwater_recovered": spell.recovered,
        "volatility": _clean(annualized_volatility(values, ppy)) if annualised else None,
        "trades": stats.trades,
        "win_rate": _clean(stats.win_rate),
        "profit_factor": _clean(stats.profit_factor),
        "avg_trade": _clean(stats.avg_trade, 2),
        "avg_trade_return": _clean(stats.avg_trade_return),
        "best_trade": _clean(stats.best_trade, 2),
        "worst_trade": _clean(stats.worst_trade, 2),
        "exposure": _clean(exp),
        "annualised": annualised,
        "why_not_annualised": reason,
    }
