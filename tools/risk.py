"""Risk maths in plain code: Sharpe, drawdown, volatility, stops, targets and position size.

Every number a risk rule depends on is computed here, never by an LLM. The LLM layers may
only shrink a position (``apply_size_factor``) or discard; nothing here takes their input
in a direction that adds risk.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

TRADING_DAYS = 252


def simple_returns(close: pd.Series) -> pd.Series:
    return close.astype(float).pct_change().dropna()


def _std(values: np.ndarray, ddof: int = 1) -> float:
    """``Series.std`` of a NaN-free float array with pandas' own arithmetic (the mean of the sum, then the
    summed squared deviations), so a record's Sharpe and volatility are the numbers pandas gave."""
    n = len(values)
    if n <= ddof:
        return math.nan
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite return gives NaN, as in pandas
        mean = values.sum(dtype=np.float64) / n
        return math.sqrt(((mean - values) ** 2).sum(dtype=np.float64) / (n - ddof))


def sharpe_ratio(returns: pd.Series | np.ndarray, risk_free_rate: float = 0.0,
                 periods_per_year: int = TRADING_DAYS) -> float | None:
    """Annualised Sharpe of periodic returns against an annual risk-free rate.

    None when it is undefined (fewer than two returns, or no variation).
    """
    r = np.asarray(returns, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) < 2:
        return None
    rf_per_period = (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0
    excess = r - rf_per_period
    sd = _std(excess)
    if not math.isfinite(sd) or sd <= 1e-12:
        return None
    return float(excess.sum(dtype=np.float64) / len(excess)) / sd * math.sqrt(periods_per_year)


def drawdowns(prices: np.ndarray) -> np.ndarray:
    """The project's one drawdown: the fraction below the running peak at each point, in [0, 1].

    0 at every new high, 0.2 at 20 % under water (positive: a depth, never a signed return).
    ``max_drawdown``, the backtest metrics, the report's chart and the dashboard all read it.
    """
    prices = np.asarray(prices, dtype=float)
    peaks = np.maximum.accumulate(prices)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(peaks > 0, 1.0 - prices / peaks, 0.0), 0.0, 1.0)


def max_drawdown(close: pd.Series | np.ndarray) -> float:
    """Largest peak-to-trough fall, as a fraction in [0, 1]. 0 for a series that never falls."""
    prices = np.asarray(close, dtype=float)
    prices = prices[np.isfinite(prices)]
    return float(drawdowns(prices).max()) if prices.size else 0.0


def annualized_volatility(close: pd.Series | np.ndarray, periods_per_year: int = TRADING_DAYS) -> float | None:
    """Standard deviation of log returns, annualised. None with fewer than two returns."""
    prices = np.asarray(close, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(prices[1:] / prices[:-1])
    log_r = log_r[~np.isnan(log_r)]
    if len(log_r) < 2:
        return None
    return _std(log_r) * math.sqrt(periods_per_year)


def atr_stop(entry: float, atr: float, multiple: float) -> float:
    """Stop price ``multiple`` ATRs below the entry (never below zero).

    The loss if it is hit is capped by ``position_size``, not by moving the stop.
    """
    if entry <= 0 or atr <= 0 or multiple <= 0:
        raise ValueError("entry, atr and multiple must be positive")
    return max(entry - multiple * atr, 0.0)


def take_profit(entry: float, profit_target: float) -> float:
    """The take-profit price ``profit_target`` (a fraction) above the entry."""
    return entry * (1.0 + profit_target)


def take_profit_target(entry: float, shares: int, profit_target_fraction: float,
                       profit_target_brl: float | None = None, lot_size: int = 100) -> tuple[float, str]:
    """The take-profit price and the limit that set it: PROFIT_TARGET (BRL gained by the whole position) or
    PROFIT_TARGET_FRACTION (of the entry price), whichever is reached first. With no shares (a blocked
    entry) the BRL target is spread over one lot."""
    by_fraction = take_profit(entry, profit_target_fraction)
    if profit_target_brl is None:
        return by_fraction, "PROFIT_TARGET_FRACTION"
    by_brl = entry + profit_target_brl / max(shares, lot_size, 1)
    return (by_brl, "PROFIT_TARGET") if by_brl < by_fraction else (by_fraction, "PROFIT_TARGET_FRACTION")


def size_position(
    capital: float,
    entry: float,
    stop: float,
    max_position_fraction: float,
    max_loss_fraction: float,
    lot_size: int = 100,
    *,
    max_shares: int | None = None,
    max_loss_brl: float | None = None,
) -> tuple[int, str | None]:
    """Shares to buy, in whole lots, inside every cap, and the cap that bound (None when nothing can be bought).

    - MAX_POSITION_FRACTION: shares x entry <= capital x max_position_fraction
    - MAX_LOSS_FRACTION:     shares x (entry - stop) <= capital x max_loss_fraction
    - MAX_POSITION_SIZE:     shares <= max_shares (the original guide's unit)
    - MAX_LOSS_PER_TRADE:    shares x (entry - stop) <= max_loss_brl (BRL, the original guide's unit)
    """
    optional = [x for x in (max_shares, max_loss_brl) if x is not None]
    if not all(math.isfinite(x) for x in (capital, entry, stop, max_position_fraction, max_loss_fraction, *optional)):
        return 0, None  # a NaN would silently disable a cap
    if capital <= 0 or entry <= 0 or lot_size < 1 or any(x <= 0 for x in optional):
        return 0, None
    per_share_risk = entry - stop
    if per_share_risk <= 0:
        return 0, None
    value_cap, loss_cap = capital * max_position_fraction, capital * max_loss_fraction
    caps = {"MAX_POSITION_FRACTION": value_cap / entry, "MAX_LOSS_FRACTION": loss_cap / per_share_risk}
    if max_shares is not None:
        caps["MAX_POSITION_SIZE"] = float(max_shares)
    if max_loss_brl is not None:
        caps["MAX_LOSS_PER_TRADE"] = max_loss_brl / per_share_risk
    bound = min(caps, key=caps.__getitem__)
    shares = max(math.floor(caps[bound] / lot_size + 1e-9), 0) * lot_size

    def breaks_a_cap(n: int) -> bool:  # float rounding must never push a boundary case over a cap
        return (n * entry > value_cap + 1e-6 or n * per_share_risk > loss_cap + 1e-6
                or (max_shares is not None and n > max_shares)
                or (max_loss_brl is not None and n * per_share_risk > max_loss_brl + 1e-6))

    while shares > 0 and breaks_a_cap(shares):
        shares -= lot_size
    return shares, (bound if shares > 0 else None)


def position_size(capital: float, entry: float, stop: float, max_position_fraction: float, max_loss_fraction: float,
                  lot_size: int = 100, *, max_shares: int | None = None, max_loss_brl: float | None = None) -> int:
    """Shares to buy, in whole lots, inside every cap (``size_position`` without the binding cap)."""
    return size_position(capital, entry, stop, max_position_fraction, max_loss_fraction, lot_size,
                         max_shares=max_shares, max_loss_brl=max_loss_brl)[0]


def apply_size_factor(shares: int, factor: float, lot_size: int = 100) -> int:
    """Shrink a position by an LLM's factor. A factor above 1 (or invalid) never grows it."""
    if not math.isfinite(factor) or factor <= 0:
        return 0
    factor = min(factor, 1.0)
    return int(math.floor(shares * factor / lot_size + 1e-9)) * lot_size


class RiskLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    capital: float
    max_position_size: int | None = None  # shares
    max_loss_per_trade: float | None = None  # BRL
    profit_target: float | None = None  # BRL
    max_position_fraction: float
    max_loss_fraction: float
    profit_target_fraction: float
    atr_stop_multiple: float
    min_reward_risk: float
    max_volatility: float
    max_drawdown: float
    lookback_bars: int
    risk_free_rate: float
    lot_size: int


class RiskSnapshot(BaseModel):
    """What the risk rules computed for a long entry at the last close."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: float
    atr: float | None
    stop: float | None
    take_profit: float
    reward_risk: float | None
    sharpe: float | None
    max_drawdown: float
    volatility: float | None
    lookback_bars: int
    shares: int
    position_value: float
    max_loss: float
    size_bound: str | None = None  # the limit that set ``shares`` (e.g. MAX_LOSS_PER_TRADE); None: no shares
    target_bound: str = "PROFIT_TARGET_FRACTION"  # the limit that set ``take_profit``
    blocks: list[str]

    def numeric(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.model_dump().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def risk_snapshot(close: pd.Series | np.ndarray | list[float], atr: float | None, limits: RiskLimits) -> RiskSnapshot:
    """Compute the risk snapshot and the list of rules that block a BUY (empty = allowed)."""
    close = np.asarray(close, dtype=float)
    close = close[~np.isnan(close)]
    if not len(close) or float(close[-1]) <= 0:
        raise ValueError("no positive close to size a position on")
    window = close[-limits.lookback_bars - 1:]
    entry = float(close[-1])
    blocks: list[str] = []
    stop = rr = size_bound = None
    shares = 0
    target, target_bound = take_profit_target(entry, 0, limits.profit_target_fraction, limits.profit_target,
                                              limits.lot_size)
    if atr is None or not math.isfinite(atr) or atr <= 0:
        blocks.append("ATR unavailable: cannot place a stop")
    else:
        stop = atr_stop(entry, atr, limits.atr_stop_multiple)
        shares, size_bound = size_position(limits.capital, entry, stop, limits.max_position_fraction,
                                           limits.max_loss_fraction, limits.lot_size,
                                           max_shares=limits.max_position_size, max_loss_brl=limits.max_loss_per_trade)
        target, target_bound = take_profit_target(entry, shares, limits.profit_target_fraction, limits.profit_target,
                                                  limits.lot_size)
        by_fraction = target_bound == "PROFIT_TARGET_FRACTION"
        tp_distance = entry * limits.profit_target_fraction if by_fraction else target - entry
        rr = tp_distance / (entry - stop) if entry > stop else None
        if rr is None or rr < limits.min_reward_risk:
            blocks.append(f"reward/risk {rr if rr is None else round(rr, 2)} below minimum {limits.min_reward_risk}")
        if shares == 0:
            blocks.append(f"position size is zero: one lot of {limits.lot_size} at {entry:.2f} breaks the caps")
    vol = annualized_volatility(window)
    mdd = max_drawdown(window)
    if vol is not None and vol > limits.max_volatility:
        blocks.append(f"volatility {vol:.2f} above maximum {limits.max_volatility}")
    if mdd > limits.max_drawdown:
        blocks.append(f"drawdown {mdd:.2f} above maximum {limits.max_drawdown}")
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = sharpe_ratio(window[1:] / window[:-1] - 1, limits.risk_free_rate)  # simple_returns, on the array
    r6 = lambda x: None if x is None else round(float(x), 6)  # noqa: E731
    return RiskSnapshot(
        entry=r6(entry),
        atr=r6(atr) if atr is not None and math.isfinite(atr) else None,
        stop=r6(stop),
        take_profit=r6(target),
        reward_risk=r6(rr),
        sharpe=r6(sharpe),
        max_drawdown=r6(mdd),
        volatility=r6(vol),
        lookback_bars=int(len(window)),
        shares=int(shares),
        position_value=r6(shares * entry),
        max_loss=r6(shares * (entry - stop)) if stop is not None else 0.0,
        size_bound=size_bound,
        target_bound=target_bound,
        blocks=blocks,
    )
