"""The portfolio page's API: cash and positions, the fills with their P&L, and the equity curve
against the Ibovespa."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query

from agent.dashboard import schemas as S
from agent.dashboard.deps import TICKER, BenchmarkDep, Ledger
from agent.errors import NoLedger
from tools.performance import drawdown_series
from tools.trades import trade_stats

router = APIRouter(tags=["portfolio"])


@router.get("/portfolio", response_model=S.Portfolio)
def portfolio(ledger: Ledger):
    """Cash, open positions (marked at the last close the broker saw) and pending orders."""
    try:
        account, positions, pending = ledger.account(), ledger.positions(), ledger.pending_orders()
    except NoLedger as exc:
        return {"available": False, "note": str(exc), "initial": None, "cash": None, "equity": None,
                "positions": [], "pending_orders": []}
    equity = account["cash"] + sum(p["market_value"] for p in positions)
    return {"available": True, "note": None, "initial": account["initial"], "cash": account["cash"],
            "equity": round(equity, 2), "positions": positions, "pending_orders": pending}


@router.get("/trades", response_model=S.Trades)
def trades(ledger: Ledger, limit: Annotated[int, Query(ge=1, le=5000)] = 200,
           ticker: Annotated[str, Query(pattern=TICKER)] = None):
    """Fills, newest first; closes carry their P&L. The totals cover every close, not only this page."""
    try:
        rows = ledger.trades()
    except NoLedger as exc:
        return {"available": False, "note": str(exc), "total": 0, "realised_pnl": 0.0, "closed": 0,
                "win_rate": None, "trades": []}
    if ticker:
        rows = [r for r in rows if r["ticker"] == ticker.upper()]
    try:
        stats = trade_stats(rows[::-1])  # the backtest's own definitions (a win: a close with profit > 0)
    except ValueError as exc:  # a ledger edited by hand
        return {"available": False, "note": f"the trades cannot be summarised: {exc}", "total": len(rows),
                "realised_pnl": 0.0, "closed": 0, "win_rate": None, "trades": rows[:limit]}
    return {"available": True, "note": None, "total": len(rows),
            "realised_pnl": round(sum(r["profit"] for r in rows if r["profit"] is not None), 2),
            "closed": stats.trades, "win_rate": stats.win_rate, "trades": rows[:limit]}


@router.get("/equity", response_model=S.Equity)
def equity(ledger: Ledger, benchmark: BenchmarkDep):
    """The paper portfolio's equity per day (its last mark), drawdown from peak, and the Ibovespa."""
    empty = {"points": [], "max_drawdown": None, "benchmark_name": "Ibovespa", "benchmark_source": None,
             "benchmark_note": None, "benchmark": []}
    try:
        rows = ledger.equity_history()
    except NoLedger as exc:
        return {"available": False, "note": str(exc), **empty}
    if not rows:
        return {"available": False, "note": "no equity marked yet: the loop marks the portfolio each cycle", **empty}
    # the curve's own running peak (the kill switch's restarts when a person resumes)
    curve = pd.Series([r["equity"] for r in rows], index=pd.DatetimeIndex([r["day"] for r in rows]), dtype=float)
    try:
        drawdown = drawdown_series(curve)
    except ValueError as exc:  # zeros, gaps or repeats: tools/performance refuses to measure them
        return {"available": False, "note": f"the equity history cannot be measured: {exc}", **empty}
    points = [{"day": r["day"], "equity": r["equity"], "peak": float(peak), "drawdown": float(dd)}
              for r, peak, dd in zip(rows, curve.cummax(), drawdown)]
    close, source, note = benchmark.closes(date.fromisoformat(rows[0]["day"]))
    bench = []
    if close is not None and len(close):
        scale = rows[0]["equity"] / float(close.iloc[0])
        bench = [{"day": ts.date().isoformat(), "value": round(float(v) * scale, 2)} for ts, v in close.items()]
        if source == "sim":
            note = "simulated Ibovespa (MARKET_SOURCE=sim): synthetic prices, not the real index"
    return {"available": True, "note": None, "points": points, "max_drawdown": max(p["drawdown"] for p in points),
            "benchmark_name": "Ibovespa", "benchmark_source": source, "benchmark_note": note, "benchmark": bench}
