"""Read-only queries over the trading ledger, for readers in another process (the dashboard).

They run against the tables the broker, the kill switch and the heartbeat create, in the same
database (SQLite or Postgres, through agent.store.db). Unlike constructing ``PaperBroker`` or
``KillSwitch``, they never create a table or a row: a reader must not conjure a ledger before the
loop's first run. A missing table or column surfaces as the driver's own error, for the caller to
tell apart (no ledger yet, or one made by an older version).
"""

from __future__ import annotations

from typing import Any

from agent.store.db import Database
from agent.trading.heartbeat import LoopHealth

ORDER_COLUMNS = ("decision_id", "ticker", "bar_date", "qty", "stop", "take_profit", "status", "reason", "created_at",
                 "updated_at")
TRADE_COLUMNS = ("trade_id", "ts", "bar_date", "action", "ticker", "qty", "price", "fees", "profit", "decision_id",
                 "mode")
POSITION_COLUMNS = ("ticker", "qty", "entry", "open_fees", "stop", "take_profit", "decision_id", "entry_bar",
                    "checked_through", "opened_at", "last_close")
KILL_SWITCH_COLUMNS = ("state", "reason", "changed_at", "changed_by")
KILL_SWITCH_LOG_COLUMNS = ("ts", "state", "reason", "changed_by")


def _all(db: Database, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(sql, params).fetchall()]


def account(db: Database) -> dict[str, Any] | None:
    """The paper account's starting capital and cash, or None before the broker opened it."""
    rows = _all(db, "SELECT initial, cash FROM account")
    return rows[0] if rows else None


def positions(db: Database) -> list[dict[str, Any]]:
    """Open positions, by ticker."""
    return _all(db, f"SELECT {', '.join(POSITION_COLUMNS)} FROM positions ORDER BY ticker")


def orders(db: Database, status: str | None = None, ticker: str | None = None) -> list[dict[str, Any]]:
    """Orders, optionally only those in ``status`` (pending/filled/rejected/cancelled) or for ``ticker``,
    by their bar and then the order they were queued in."""
    query, args = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE 1=1", []
    if status:
        query, args = query + " AND status=?", [*args, status]
    if ticker:
        query, args = query + " AND ticker=?", [*args, ticker]
    return _all(db, query + " ORDER BY bar_date, seq", args)


def order_outcome(db: Database, decision_id: str) -> dict[str, Any] | None:
    """The order a decision became (its status and why), or None when it never became one."""
    rows = _all(db, "SELECT status, reason FROM orders WHERE decision_id=?", (decision_id,))
    return rows[0] if rows else None


def trades(db: Database) -> list[dict[str, Any]]:
    """Every fill, oldest first."""
    return _all(db, f"SELECT {', '.join(TRADE_COLUMNS)} FROM trades ORDER BY seq")


def equity_history(db: Database) -> list[dict[str, Any]]:
    """The last equity the kill switch marked on each day, oldest first, with the peak at that time."""
    return _all(db, "SELECT day, ts, equity, peak FROM equity_history ORDER BY day")


def kill_switch(db: Database) -> dict[str, Any] | None:
    """The kill switch's state, why, when and by whom; None before the loop created it."""
    rows = _all(db, f"SELECT {', '.join(KILL_SWITCH_COLUMNS)} FROM kill_switch")
    return rows[0] if rows else None


def kill_switch_log(db: Database, limit: int | None) -> list[dict[str, Any]]:
    """The last ``limit`` changes of the kill switch (all of them for None), newest first."""
    sql = f"SELECT {', '.join(KILL_SWITCH_LOG_COLUMNS)} FROM kill_switch_log ORDER BY seq DESC"
    return _all(db, sql + " LIMIT ?", (limit,)) if limit is not None else _all(db, sql)


def recent_cycles(db: Database, limit: int) -> list[dict[str, Any]]:
    """The loop's last ``limit`` heartbeat rows, newest first, decoded as the heartbeat wrote them."""
    return LoopHealth.decode(db.execute(f"SELECT {', '.join(LoopHealth.COLUMNS)} FROM loop_cycles "
                                        "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall())
