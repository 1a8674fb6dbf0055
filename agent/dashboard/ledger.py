"""The ledger as the dashboard reads it: positions, trades, the equity curve, the kill switch and
the loop's heartbeat, from the database the loop writes (DATABASE_PATH, or DATABASE_URL), through
the read queries agent.trading owns (agent.trading.queries), never a copy of their SQL.

Reading never creates anything: before the loop's first run there is no database (or no table
yet), and every view says so instead of failing. So does a ledger that cannot be read now (Postgres
down, a file from an older version): the pages show why, never a server error.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from loguru import logger
from pydantic import SecretStr

from agent.errors import ConfigError, LedgerUnreachable, NoLedger
from agent.store.db import Database, is_postgres, open_database
from agent.trading import queries
from agent.trading.broker import last_mark
from agent.trading.kill_switch import KillSwitch, TradingState

T = TypeVar("T")
KILL_SWITCH_LOG_SHOWN = 20  # the last changes shown under the kill switch


def unusable_ledger(where: str, path: Path, exc: Exception) -> NoLedger:
    """Why a SQLite ledger cannot be opened: not a ledger at all (NoLedger, 409 for the controls: only a
    person can fix it), or not now, e.g. locked (LedgerUnreachable, 503)."""
    if path.is_dir():
        return NoLedger(f"DATABASE_PATH ({where}) is a folder, not a ledger file")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return NoLedger(f"the ledger at {where} is damaged or not a ledger ({exc}): restore it from a backup "
                        "(python -m agent.backup restore)")
    return LedgerUnreachable(f"the ledger ({where}) cannot be opened now: {type(exc).__name__}: {exc}")


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
                except (sqlite3.Error, OSError) as exc:  # a folder, a truncated file, random bytes
                    raise unusable_ledger(self.where, Path(self.store), exc) from None
                self._inode = inode
            return self._db

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except Exception:  # noqa: BLE001 - closing a handle that is already broken
                pass
        self._db, self._inode = None, None

    def read(self, query: Callable[..., T], *args: Any) -> T:
        """``query`` (one of agent.trading.queries) over the ledger, its failures told apart as NoLedger."""
        try:
            return query(self.db(), *args)
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
        """Open positions marked at the last close the broker saw."""
        out = []
        for p in self.read(queries.positions):
            mark = last_mark(p)
            p["market_value"] = round(p["qty"] * mark, 2)
            p["unrealised_pnl"] = round((mark - p["entry"]) * p["qty"] - p["open_fees"], 2)
            p["unrealised_return"] = (mark - p["entry"]) / p["entry"] if p["entry"] else None
            out.append(p)
        return out

    def pending_orders(self) -> list[dict[str, Any]]:
        return self.read(queries.orders, "pending")

    def order_outcome(self, decision_id: str) -> dict[str, Any] | None:
        return self.read(queries.order_outcome, decision_id)

    def trades(self) -> list[dict[str, Any]]:
        """Every fill, newest first. A close carries its P&L and the entry it closed: the quantity-weighted
        price of the opens since the ticker's previous close (pyramided adds included)."""
        rows = self.read(queries.trades)
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
        row = self.read(queries.account)
        if row is None:
            raise NoLedger(f"the ledger at {self.where} has no account yet")
        return row

    def equity_history(self) -> list[dict[str, Any]]:
        return self.read(queries.equity_history)

    def kill_switch(self) -> dict[str, Any]:
        row = self.read(queries.kill_switch)
        if row is None:
            raise NoLedger(f"the ledger at {self.where} has no kill switch yet")
        return {**row, "log": self.read(queries.kill_switch_log, KILL_SWITCH_LOG_SHOWN)}

    def cycles(self, limit: int) -> list[dict[str, Any]]:
        return self.read(queries.recent_cycles, limit)

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
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise unusable_ledger(self.where, Path(self.store), exc) from None  # e.g. a truncated file
            raise LedgerUnreachable(f"the ledger ({self.where}) cannot be written now: {type(exc).__name__}") from None
