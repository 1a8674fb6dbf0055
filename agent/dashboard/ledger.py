"""The ledger as the dashboard reads it: positions, trades, the equity curve, the kill switch and
the loop's heartbeat, from the database the loop writes (DATABASE_PATH, or DATABASE_URL).

Reading never creates anything: before the loop's first run there is no database (or no table
yet), and every view says so instead of failing. So does a ledger that cannot be read now (Postgres
down, a file from an older version): the pages show why, never a server error.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import SecretStr

from agent.trading.broker import last_mark
from agent.store.db import Database, is_postgres, open_database
from agent.errors import ConfigError
from agent.trading.heartbeat import LoopHealth
from agent.trading.kill_switch import KillSwitch, TradingState


class NoLedger(Exception):
    """The ledger cannot answer this view: not created yet, unreachable, or made by an older version.
    The message says which, for the page to show."""


class LedgerUnreachable(NoLedger):
    """The database is there but cannot be read now (e.g. Postgres is down)."""


class LedgerReader:
    def __init__(self, store: Path | SecretStr):
        self.store = store
        self._db: Database | None = None
        self._inode: int | None = None  # of the SQLite file opened: one moved away and replaced is reopened
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return "DATABASE_URL (Postgres)" if is_postgres(self.store) else str(Path(self.store).resolve())

    def db(self) -> Database:
        with self._lock:
            inode = None
            if not is_postgres(self.store):
                try:
                    inode = Path(self.store).stat().st_ino
                except OSError:
                    inode = None
                if inode is None:
                    self._close()
                    raise NoLedger(f"no ledger at {self.where} yet: start the loop (make run)")
                if self._db is not None and inode != self._inode:
                    logger.warning("dashboard: the ledger at {} was replaced; reopening it", self.where)
                    self._close()
            if self._db is None:
                try:
                    self._db = open_database(self.store)
                except ConfigError as exc:  # Postgres refused the connection
                    raise LedgerUnreachable(f"the ledger ({self.where}) cannot be reached now: {exc}") from None
                self._inode = inode
            return self._db

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except Exception:  # noqa: BLE001 - closing a handle that is already broken
                pass
        self._db, self._inode = None, None

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in self.db().execute(sql, params).fetchall()]
        except NoLedger:
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 and psycopg errors, told apart by their text
            text = str(exc)
            if "no such table" in text or ("relation" in text and "does not exist" in text):
                raise NoLedger(f"the ledger at {self.where} has no data for this view yet") from None
            if "no such column" in text or ("column" in text and "does not exist" in text):
                raise NoLedger(f"the ledger at {self.where} was made by an older version of the agent: back it up "
                               "(make backup), move it away and restart the loop for a fresh one") from None
            with self._lock:
                self._close()  # a broken connection is opened afresh on the next request
            raise LedgerUnreachable(f"the ledger ({self.where}) cannot be read now: {type(exc).__name__}") from None

    # ------------------------------------------------------------------ views

    def positions(self) -> list[dict[str, Any]]:
        out = []
        for p in self.rows("SELECT ticker, qty, entry, open_fees, stop, take_profit, decision_id, entry_bar, "
                           "checked_through, opened_at, last_close FROM positions ORDER BY ticker"):
            mark = last_mark(p)
            p["market_value"] = round(p["qty"] * mark, 2)
            p["unrealised_pnl"] = round((mark - p["entry"]) * p["qty"] - p["open_fees"], 2)
            p["unrealised_return"] = (mark - p["entry"]) / p["entry"] if p["entry"] else None
            out.append(p)
        return out

    def pending_orders(self) -> list[dict[str, Any]]:
        return self.rows("SELECT decision_id, ticker, bar_date, qty, stop, take_profit, created_at FROM orders "
                         "WHERE status='pending' ORDER BY seq")

    def trades(self) -> list[dict[str, Any]]:
        """Every fill, newest first. A close carries its P&L and the entry it closed: the quantity-weighted
        price of the opens since the ticker's previous close (pyramided adds included)."""
        rows = self.rows("SELECT trade_id, ts, bar_date, action, ticker, qty, price, fees, profit, decision_id "
                         "FROM trades ORDER BY seq")
        held: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            r["entry_price"] = r["entry_bar"] = r["return"] = None
            if r["action"] == "open":
                held.setdefault(r["ticker"], []).append(r)
                continue
            opens = held.pop(r["ticker"], [])
            qty = sum(o["qty"] for o in opens)
            if qty > 0:
                r["entry_price"] = round(sum(o["qty"] * o["price"] for o in opens) / qty, 4)
                r["entry_bar"] = opens[0]["bar_date"]
                if r["profit"] is not None:
                    r["return"] = r["profit"] / (r["entry_price"] * r["qty"])
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
        return LoopHealth.decode(self.rows(f"SELECT {', '.join(LoopHealth.COLUMNS)} FROM loop_cycles "
                                           "ORDER BY seq DESC LIMIT ?", (limit,)))

    def set_state(self, state: TradingState, reason: str, by: str, ts: str) -> bool:
        """The one write the dashboard makes, through the kill switch's own code (as ``--halt`` does)."""
        db = self.db()  # NoLedger when there is none yet: never create one from the dashboard
        try:
            return KillSwitch(db).set(state, reason, by, ts)
        except ConfigError as exc:  # a ledger made by an older version
            raise NoLedger(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the database went away mid-request
            with self._lock:
                self._close()
            raise LedgerUnreachable(f"the ledger ({self.where}) cannot be written now: {type(exc).__name__}") from None
