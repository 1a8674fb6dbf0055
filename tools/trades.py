"""Trade statistics of a backtest or of the live paper ledger, in plain code: count, win rate, profit factor, exposure.

Computed from the paper broker's trade dicts (``open`` and ``close_*`` rows linked by ``decision_id``),
never by an LLM. ``tools.performance.summarize`` and the dashboard both read them from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TradeStats:
    """Closed round trips of the paper broker. BRL figures are net of all fees.

    ``profit_factor`` is None when there is no losing trade (including no trade at all): the
    ratio is infinite or 0/0 then, and ``trades``/``win_rate`` tell which. ``avg_trade_return``
    is profit over entry notional (open qty x price), None unless every close has its open.
    """

    trades: int
    win_rate: float | None = None
    profit_factor: float | None = None
    avg_trade: float | None = None
    avg_trade_return: float | None = None
    best_trade: float | None = None
    worst_trade: float | None = None


def _describe(i: int, trade: Mapping[str, Any]) -> str:
    return f"trade {i} ({trade.get('action')} {trade.get('ticker')} {trade.get('decision_id')})"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        return None
    return float(value)


def trade_stats(trades: Sequence[Mapping[str, Any]]) -> TradeStats:
    """Count, win rate, profit factor, average/best/worst of the closed round trips.

    A win is a close with profit > 0; a zero-profit close counts as a trade but neither wins
    nor loses. Opens without a close (still open) are ignored.
    """
    if isinstance(trades, (str, bytes, Mapping)) or not isinstance(trades, Sequence):
        raise ValueError(f"trades must be a list of trade dicts, got {type(trades).__name__}")
    notional: dict[Any, float | None] = {}
    closes: list[tuple[Any, float]] = []
    for i, trade in enumerate(trades):
        if not isinstance(trade, Mapping):
            raise ValueError(f"trade {i} must be a dict, got {type(trade).__name__}")
        action = trade.get("action")
        if action == "open":
            did = trade.get("decision_id")
            if did in notional:
                raise ValueError(f"{_describe(i, trade)}: a second open for the same decision_id")
            qty, price = _number(trade.get("qty")), _number(trade.get("price"))
            notional[did] = qty * price if qty is not None and price is not None and qty * price > 0 else None
        elif isinstance(action, str) and action.startswith("close"):
            profit = _number(trade.get("profit"))
            if profit is None:
                raise ValueError(f"{_describe(i, trade)}: a close needs a finite numeric profit, "
                                 f"got {trade.get('profit')!r}")
            closes.append((trade.get("decision_id"), profit))
        else:
            raise ValueError(f"{_describe(i, trade)}: unknown action {action!r} (expected 'open' or 'close_*')")
    if not closes:
        return TradeStats(0)
    profits = np.array([p for _, p in closes])
    gross_loss = -float(profits[profits < 0].sum())
    entries = [notional.get(did) for did, _ in closes]
    returns = [p / n for (_, p), n in zip(closes, entries)] if all(entries) else None
    return TradeStats(
        trades=len(closes),
        win_rate=float((profits > 0).mean()),
        profit_factor=float(profits[profits > 0].sum()) / gross_loss if gross_loss > 0 else None,
        avg_trade=float(profits.mean()),
        avg_trade_return=float(np.mean(returns)) if returns else None,
        best_trade=float(profits.max()),
        worst_trade=float(profits.min()),
    )


def exposure(open_positions: pd.Series) -> float:
    """Fraction of bars with at least one open position (counts or booleans per bar)."""
    if not isinstance(open_positions, pd.Series):
        raise ValueError(f"open_positions must be a pandas Series, got {type(open_positions).__name__}")
    if open_positions.empty:
        raise ValueError("open_positions is empty: exposure of no bars is undefined")
    if not (pd.api.types.is_bool_dtype(open_positions.dtype) or pd.api.types.is_numeric_dtype(open_positions.dtype)):
        raise ValueError(f"open_positions must be counts or booleans, got dtype {open_positions.dtype}")
    counts = open_positions.astype(float).to_numpy()
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("open_positions must be finite, non-negative counts (no NaN)")
    return float((counts > 0).mean())
