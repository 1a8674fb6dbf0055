"""The ledger as the dashboard reads it: positions, trades, the equity curve, the kill switch and
the loop's heartbeat, from the database the loop writes (DATABASE_PATH, or DATABASE_URL).

Reading never creates anything: before the loop's first run there is no database (or no table
yet), and every view says so instead of failing.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agent.db import Database, is_postgres, open_database
from agent.health import LoopHealth
from agent.kill_switch import KillSwitch, TradingState


class NoLedger(Exception):
    """The loop has not created the ledger (or this table) yet."""


class LedgerReader:
    def __init__(self, store: Path | SecretStr):
        self.store = store
        self._db: Database | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return "DATABASE_URL (Postgres)" if is_postgres(self.store) else str(Path(self.store).resolve())

    def db(self) -> Database:
        with self._lock:
            if self._db is None:
                if not is_postgres(self.store) and not Path(self.store).is_file():
                    raise NoLedger(f"no ledger at {self.where} yet: start the loop (make run)")
                self._db = open_database(self.store)
            return self._db

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in self.db().execute(sql, params).fetchall()]
        except NoLedger:
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg: most often "no such table" before the first cycle
            if "no such table" in str(exc) or "does not exist" in str(exc):
                raise NoLedger(f"the ledger at {self.where} has no data for this view yet") from None
            raise

    # ------------------------------------------------------------------ views

    def positions(self) -> list[dict[str, Any]]:
        out = []
        for p in self.rows("SELECT ticker, qty, entry, open_fees, stop, take_profit, decision_id, entry_bar, "
                           "checked_through, opened_at, last_close FROM positions ORDER BY ticker"):
            mark = p["last_close"] if p["last_close"] is not None else p["entry"]
            p["market_value"] = round(p["qty"] * mark, 2)
            p["unrealised_pnl"] = round((mark - p["entry"]) * p["qty"] - p["open_fees"], 2)
            p["unrealised_return"] = (mark - p["entry"]) / p["entry"] if p["entry"] else None
            out.append(p)
        return out

    def pending_orders(self) -> list[dict[str, Any]]:
        return self.rows("SELECT decision_id, ticker, bar_date, qty, stop, take_profit, created_at FROM orders "
                         "WHERE status='pending' ORDER BY seq")

    def trades(self) -> list[dict[str, Any]]:
        """Every fill, newest first; closes carry their P&L and the entry they closed."""
        rows = self.rows("SELECT trade_id, ts, bar_date, action, ticker, qty, price, fees, profit, decision_id "
                         "FROM trades ORDER BY seq")
        opens = {r["decision_id"]: r for r in rows if r["action"] == "open"}
        for r in rows:
            entry = opens.get(r["decision_id"]) if r["action"] != "open" else None
            r["entry_price"] = entry["price"] if entry else None
            r["entry_bar"] = entry["bar_date"] if entry else None
            r["return"] = (r["profit"] / (entry["price"] * r["qty"])
                           if entry and r["profit"] is not None and entry["price"] else None)
        return rows[::-1]

    def account(self) -> dict[str, Any]:
        rows = self.rows("SELECT initial, cash FROM account")
        if not rows:
            raise NoLedger(f"the ledger at {self.where} has no account yet")
        return rows[0]

    def equity_history(self) -> list[dict[str, Any]]:
        return self.rows("SELECT day, ts, equity, peak FROM equity_history ORDER BY day")

    def kill_switch(self) -> dict[str, Any]:
        rows = self.rows("SELECT state, reason, changed_at, changed_by FROM kill_switch")
        if not rows:
            raise NoLedger(f"the ledger at {self.where} has no kill switch yet")
        log = self.rows("SELECT ts, state, reason, changed_by FROM kill_switch_log ORDER BY seq DESC LIMIT 20")
        return {**rows[0], "log": log}

    def cycles(self, limit: int) -> list[dict[str, Any]]:
        return LoopHealth.decode(self.rows("SELECT * FROM loop_cycles ORDER BY seq DESC LIMIT ?", (limit,)))

    def set_state(self, state: TradingState, reason: str, by: str, ts: str) -> bool:
        """The one write the dashboard makes, through the kill switch's own code (as ``--halt`` does)."""
        return KillSwitch(self.store).set(state, reason, by, ts)
