"""The paper broker: simulated fills, B3 costs and rule-based exits, in an SQLite ledger (WAL).

Restart safety comes from two rules:
- every trade has a deterministic id (``<decision_id>:open`` / ``:close``) that the ledger keeps
  UNIQUE, so acting twice on the same decision is impossible, even after a crash;
- the ledger commits first and ``trades.jsonl`` is appended after; ``reconcile()`` on start-up
  appends any committed trade the log lacks (a torn last line is skipped, never glued).
Sizes, stops and targets come from the decision record (computed by tools/risk.py); the broker
never enlarges them. This module is not wired into the loop yet.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from loguru import logger

from agent.sink import append_jsonl, read_jsonl

SCHEMA = """
CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), initial REAL NOT NULL, cash REAL NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    ticker TEXT PRIMARY KEY, qty INTEGER NOT NULL, entry REAL NOT NULL, open_fees REAL NOT NULL,
    stop REAL, take_profit REAL, decision_id TEXT NOT NULL, opened_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (
    trade_id TEXT PRIMARY KEY, ts TEXT NOT NULL, action TEXT NOT NULL, ticker TEXT NOT NULL, qty INTEGER NOT NULL,
    price REAL NOT NULL, fees REAL NOT NULL, profit REAL, decision_id TEXT NOT NULL, mode TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Costs:
    slippage_bps: float = 5.0  # paid on every fill, against us
    fee_bps: float = 3.25  # B3 emolumentos + liquidação, on traded value
    commission: float = 0.0  # corretagem per order, BRL

    def fees(self, value: float) -> float:
        return round(value * self.fee_bps / 10_000 + self.commission, 2)


class PaperBroker:
    def __init__(self, db_path: Path, trades_log: Path, capital: float, costs: Costs = Costs(),
                 allow_pyramiding: bool = False):
        self.db_path, self.trades_log = Path(db_path), Path(trades_log)
        self.costs, self.allow_pyramiding = costs, allow_pyramiding
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO account VALUES (1, ?, ?)", (capital, capital))
        self.reconcile()

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    # ------------------------------------------------------------------ state

    @property
    def cash(self) -> float:
        with self._db() as db:
            return db.execute("SELECT cash FROM account").fetchone()["cash"]

    def positions(self) -> dict[str, dict[str, Any]]:
        with self._db() as db:
            return {r["ticker"]: dict(r) for r in db.execute("SELECT * FROM positions")}

    def trades(self) -> list[dict[str, Any]]:
        with self._db() as db:
            return [dict(r) for r in db.execute("SELECT * FROM trades ORDER BY rowid")]

    def equity(self, marks: dict[str, float]) -> float:
        """Cash plus open positions at ``marks`` (entry price where a ticker has no mark)."""
        return self.cash + sum(p["qty"] * marks.get(t, p["entry"]) for t, p in self.positions().items())

    # ------------------------------------------------------------------ orders

    def open_from_decision(self, record: dict[str, Any], next_open: float, ts: str) -> dict[str, Any] | None:
        """Fill a BUY record at the next bar's open plus slippage. None when there is nothing to do."""
        pos = record.get("position") or {}
        qty = int(pos.get("shares") or 0)
        if record.get("decision") != "BUY" or qty <= 0:
            return None
        if not (math.isfinite(next_open) and next_open > 0):
            raise ValueError(f"{record['ticker']}: next open {next_open!r} is not a price")
        price = round(next_open * (1 + self.costs.slippage_bps / 10_000), 4)
        fees = self.costs.fees(qty * price)
        trade = {"trade_id": f"{record['decision_id']}:open", "ts": ts, "action": "open", "ticker": record["ticker"],
                 "qty": qty, "price": price, "fees": fees, "profit": None, "decision_id": record["decision_id"],
                 "mode": "simulation"}

        def apply(db: sqlite3.Connection) -> bool:
            held = db.execute("SELECT qty FROM positions WHERE ticker=?", (trade["ticker"],)).fetchone()
            if held and not self.allow_pyramiding:
                logger.info("{}: BUY ignored, a position is open (pyramiding off)", trade["ticker"])
                return False
            cash = db.execute("SELECT cash FROM account").fetchone()["cash"]
            if qty * price + fees > cash:
                logger.warning("{}: BUY of {} not filled: needs {:.2f}, cash {:.2f}", trade["ticker"], qty,
                               qty * price + fees, cash)
                return False
            db.execute("UPDATE account SET cash = cash - ?", (qty * price + fees,))
            if held:
                db.execute("UPDATE positions SET entry = (entry*qty + ?*?)/(qty + ?), qty = qty + ?, "
                           "open_fees = open_fees + ? WHERE ticker=?", (price, qty, qty, qty, fees, trade["ticker"]))
            else:
                db.execute("INSERT INTO positions VALUES (?,?,?,?,?,?,?,?)",
                           (trade["ticker"], qty, price, fees, pos.get("stop"), pos.get("take_profit"),
                            record["decision_id"], ts))
            return True

        return self._commit(trade, apply)

    def check_exits(self, ticker: str, bar: dict[str, float], ts: str) -> dict[str, Any] | None:
        """Close on the stop or the take-profit touched by ``bar``; a gap fills at the open.

        When one bar touches both, the stop is assumed first (the conservative reading).
        """
        pos = self.positions().get(ticker)
        if pos is None:
            return None
        stop, target = pos["stop"], pos["take_profit"]
        if stop is not None and bar["low"] <= stop:
            exit_price, why = min(bar["open"], stop), "stop"
        elif target is not None and bar["high"] >= target:
            exit_price, why = max(bar["open"], target), "take_profit"
        else:
            return None
        return self._close(pos, exit_price, ts, why)

    def _close(self, pos: dict[str, Any], raw_price: float, ts: str, why: str) -> dict[str, Any] | None:
        price = round(raw_price * (1 - self.costs.slippage_bps / 10_000), 4)
        qty = pos["qty"]
        fees = self.costs.fees(qty * price)
        profit = round((price - pos["entry"]) * qty - fees - pos["open_fees"], 2)
        trade = {"trade_id": f"{pos['decision_id']}:close", "ts": ts, "action": f"close_{why}",
                 "ticker": pos["ticker"], "qty": qty, "price": price, "fees": fees, "profit": profit,
                 "decision_id": pos["decision_id"], "mode": "simulation"}

        def apply(db: sqlite3.Connection) -> bool:
            db.execute("UPDATE account SET cash = cash + ?", (qty * price - fees,))
            db.execute("DELETE FROM positions WHERE ticker=?", (pos["ticker"],))
            return True

        return self._commit(trade, apply)

    def _commit(self, trade: dict[str, Any], apply: Callable[[sqlite3.Connection], bool]) -> dict[str, Any] | None:
        """One transaction: skip a trade id already in the ledger, apply the change, record the trade;
        then append it to trades.jsonl. None when nothing was done."""
        with self._lock, self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                done_before = db.execute("SELECT 1 FROM trades WHERE trade_id=?", (trade["trade_id"],)).fetchone()
                if done_before or not apply(db):
                    db.execute("ROLLBACK")
                    return None
                self._insert_trade(db, trade)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        append_jsonl(self.trades_log, trade)
        return trade

    @staticmethod
    def _insert_trade(db: sqlite3.Connection, t: dict[str, Any]) -> None:
        db.execute("INSERT INTO trades VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (t["trade_id"], t["ts"], t["action"], t["ticker"], t["qty"], t["price"], t["fees"], t["profit"],
                    t["decision_id"], t["mode"]))

    # ------------------------------------------------------------------ restart

    def reconcile(self) -> int:
        """Append to trades.jsonl every committed trade it lacks (the ledger is the source of truth)."""
        logged = {t.get("trade_id") for t in read_jsonl(self.trades_log)} if self.trades_log.exists() else set()
        missing = [t for t in self.trades() if t["trade_id"] not in logged]
        for trade in missing:
            append_jsonl(self.trades_log, trade)
        if missing:
            logger.warning("reconciled {} trade(s) missing from {}", len(missing), self.trades_log)
        return len(missing)
