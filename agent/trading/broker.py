"""The paper broker: pending orders, simulated fills, B3 costs and rule-based exits, in an SQLite ledger (WAL).

A BUY decision becomes a *pending order*; the first daily bar after the decision's bar fills it at
its open plus slippage. Every later bar is checked against the position's stop and take-profit.
The live loop and the backtester feed the same bars through ``process_bars``, so their
accounting cannot drift apart.

Restart safety comes from three rules:
- an order's id is the deterministic ``decision_id`` and every trade id derives from it
  (``<decision_id>:open`` / ``:close``); the ledger keeps them UNIQUE, so acting twice on the
  same decision is impossible, even after a crash;
- an order, its fill, and the position change commit in one transaction;
- the ledger commits first and ``trades.jsonl`` is appended after; ``reconcile()`` on start-up
  appends any committed trade the log lacks (a torn last line is skipped, never glued), and so does
  the first append that works after one failed (a full disk): a log failure never undoes a trade.
Sizes, stops and targets come from the decision record (computed by tools/risk.py); the broker
never enlarges them.
"""

from __future__ import annotations

import errno
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from loguru import logger
from pydantic import SecretStr

from agent.ops.metrics import COUNTERS
from agent.store.db import Database, check_schema, next_seq, open_database
from agent.store.jsonl import append_jsonl, read_jsonl
from agent.trading import queries
from agent.trading.queries import ORDER_COLUMNS, TRADE_COLUMNS

SCHEMA = """
CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), initial DOUBLE PRECISION NOT NULL, cash DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    decision_id TEXT PRIMARY KEY, ticker TEXT NOT NULL, bar_date TEXT NOT NULL, qty INTEGER NOT NULL,
    stop DOUBLE PRECISION, take_profit DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    ticker TEXT PRIMARY KEY, qty INTEGER NOT NULL, entry DOUBLE PRECISION NOT NULL, open_fees DOUBLE PRECISION NOT NULL,
    stop DOUBLE PRECISION, take_profit DOUBLE PRECISION, decision_id TEXT NOT NULL, entry_bar TEXT NOT NULL, checked_through TEXT,
    opened_at TEXT NOT NULL, last_close DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS trades (
    trade_id TEXT PRIMARY KEY, ts TEXT NOT NULL, bar_date TEXT NOT NULL, action TEXT NOT NULL, ticker TEXT NOT NULL,
    qty INTEGER NOT NULL, price DOUBLE PRECISION NOT NULL, fees DOUBLE PRECISION NOT NULL, profit DOUBLE PRECISION, decision_id TEXT NOT NULL,
    mode TEXT NOT NULL, seq INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Costs:
    slippage_bps: float = 5.0  # paid on every fill, against us
    fee_bps: float = 3.25  # B3 emolumentos + liquidação, on traded value
    commission: float = 0.0  # corretagem per order, BRL

    def fees(self, value: float) -> float:
        return round(value * self.fee_bps / 10_000 + self.commission, 2)


@dataclass(frozen=True)
class Bar:
    """One daily bar as the broker sees it (``date`` is ISO ``YYYY-MM-DD``)."""

    date: str
    open: float
    high: float
    low: float
    close: float


def last_mark(position: dict[str, Any]) -> float:
    """What a position is worth per share now: the last close the broker saw, or its entry before any."""
    return position["last_close"] or position["entry"]


def bars_from_frame(frame: pd.DataFrame) -> list[Bar]:
    """Validated OHLC bars (agent.market) -> broker bars, oldest first."""
    prices = zip(*(frame[c].to_numpy(dtype=float).tolist() for c in ("open", "high", "low", "close")))
    return [Bar(pd.Timestamp(ts).date().isoformat(), *ohlc) for ts, ohlc in zip(frame.index, prices)]


class PaperBroker:
    def __init__(self, db: Path | str | SecretStr | Database, trades_log: Path, capital: float, costs: Costs = Costs(),
                 allow_pyramiding: bool = False, fill_guard: Callable[[Database], str | None] | None = None):
        """``db``: the SQLite file (DATABASE_PATH), a Postgres URL (DATABASE_URL) or an open Database (a
        backtest's scratch ledger). ``fill_guard`` reads, in the fill's transaction, why no order may fill now
        (the kill switch)."""
        self.fill_guard = fill_guard
        self.trades_log = Path(trades_log)
        self.costs, self.allow_pyramiding = costs, allow_pyramiding
        self._lock = threading.Lock()
        self._log_behind = False  # trades.jsonl missed an append (e.g. a full disk): reconcile on the next one
        self.db = open_database(db)
        self.db.script(SCHEMA)
        check_schema(self.db, SCHEMA, "the paper-broker ledger")
        self.db.execute("INSERT INTO account VALUES (1, ?, ?) ON CONFLICT DO NOTHING", (capital, capital))
        self.reconcile()

    # ------------------------------------------------------------------ state

    @property
    def cash(self) -> float:
        return self.db.execute("SELECT cash FROM account").fetchone()["cash"]

    def positions(self) -> dict[str, dict[str, Any]]:
        return {r["ticker"]: dict(r) for r in self.db.execute("SELECT * FROM positions")}

    def orders(self, status: str | None = None, ticker: str | None = None) -> list[dict[str, Any]]:
        return queries.orders(self.db, status, ticker)

    def order_status(self, decision_id: str) -> str | None:
        """pending / filled / rejected / cancelled, or None when the decision never became an order."""
        outcome = queries.order_outcome(self.db, decision_id)
        return outcome["status"] if outcome else None

    def trades(self) -> list[dict[str, Any]]:
        return queries.trades(self.db)

    def equity(self, marks: dict[str, float]) -> float:
        """Cash plus open positions at ``marks``; a ticker with no mark now is valued at the last close
        the broker saw (a failed fetch must neither fake a loss nor hide one)."""
        return self.cash + sum(p["qty"] * marks.get(t, last_mark(p))
                               for t, p in self.positions().items())

    # ------------------------------------------------------------------ orders

    def submit(self, record: dict[str, Any], ts: str, max_open: int | None = None) -> dict[str, Any] | None:
        """Queue a BUY record as a pending order, filled by the first bar after its bar. Once per decision id.

        ``max_open`` (MAX_OPEN_POSITIONS) and "one pending order per ticker" are checked again inside the
        write transaction: another agent process on the same ledger may have queued an order since the
        trader's guard looked."""
        pos = record.get("position") or {}
        qty = int(pos.get("shares") or 0)
        if record.get("decision") != "BUY" or qty <= 0 or not record.get("bar_date"):
            return None
        order = {"decision_id": record["decision_id"], "ticker": record["ticker"], "bar_date": record["bar_date"][:10],
                 "qty": qty, "stop": pos.get("stop"), "take_profit": pos["take_profit"], "status": "pending",
                 "reason": None, "created_at": ts, "updated_at": ts}
        with self._lock, self.db.write("ledger") as db:
            refused = self.refusal(db, order["ticker"], max_open)
            if refused:
                logger.warning("{}: BUY {} not queued: {}", order["ticker"], order["decision_id"], refused)
                return None
            cur = db.execute(f"INSERT INTO orders VALUES ({', '.join('?' * (len(ORDER_COLUMNS) + 1))}) "
                             "ON CONFLICT DO NOTHING", [*(order[c] for c in ORDER_COLUMNS), next_seq(db, "orders")])
        if cur.rowcount == 0:
            return None
        logger.info("{}: order queued: BUY {} at the next open (decision {})", order["ticker"], qty,
                    order["decision_id"])
        return order

    @staticmethod
    def refusal(db: Database, ticker: str, max_open: int | None) -> str | None:
        """Why an order for ``ticker`` may not be queued now (one pending per ticker, MAX_OPEN_POSITIONS), or
        None. The trader's guard asks before a decision; ``submit`` asks again inside the order's transaction."""
        pending = [r["ticker"] for r in db.execute("SELECT ticker FROM orders WHERE status='pending'")]
        if ticker in pending:
            return f"an order for {ticker} is already pending"
        if max_open is not None:
            held = db.execute("SELECT COUNT(*) AS n FROM positions").fetchone()["n"]
            if held + len(pending) >= max_open:
                return f"max open positions reached ({held} open + {len(pending)} pending, limit {max_open})"
        return None

    def cancel_pending(self, reason: str, ts: str, ticker: str | None = None) -> int:
        query = "UPDATE orders SET status='cancelled', reason=?, updated_at=? WHERE status='pending'"
        args: list[Any] = [reason, ts]
        if ticker:
            query, args = query + " AND ticker=?", [*args, ticker]
        with self._lock:
            n = self.db.execute(query, args).rowcount
        if n:
            logger.warning("cancelled {} pending order(s): {}", n, reason)
        return n

    def process_bars(self, ticker: str, bars: Iterable[Bar], ts: str) -> list[dict[str, Any]]:
        """Walk ``ticker``'s bars in order: fill pending orders at the first later open, then check exits.

        Bars already checked are skipped, so feeding the same window every cycle is harmless.
        """
        trades = []
        for bar in sorted(bars, key=lambda b: b.date):
            for order in self.orders("pending", ticker):
                if bar.date > order["bar_date"]:
                    trade = self._fill(order, bar, ts)
                    if trade:
                        trades.append(trade)
            pos = self.positions().get(ticker)
            if pos and bar.date >= pos["entry_bar"] and (pos["checked_through"] or "") < bar.date:
                trade = self._check_exit(pos, bar, ts)
                if trade:
                    trades.append(trade)
        return trades

    def _fill(self, order: dict[str, Any], bar: Bar, ts: str) -> dict[str, Any] | None:
        if not (math.isfinite(bar.open) and bar.open > 0):
            raise ValueError(f"{order['ticker']} {bar.date}: open {bar.open!r} is not a price")
        qty = order["qty"]
        price = round(bar.open * (1 + self.costs.slippage_bps / 10_000), 4)
        fees = self.costs.fees(qty * price)
        trade = {"trade_id": f"{order['decision_id']}:open", "ts": ts, "bar_date": bar.date, "action": "open",
                 "ticker": order["ticker"], "qty": qty, "price": price, "fees": fees, "profit": None,
                 "decision_id": order["decision_id"], "mode": "simulation"}

        def reject(db: Database, reason: str, status: str = "rejected") -> bool:
            logger.warning("{}: order {} not filled: {}", order["ticker"], order["decision_id"], reason)
            db.execute("UPDATE orders SET status=?, reason=?, updated_at=? WHERE decision_id=?",
                       (status, reason, ts, order["decision_id"]))
            return False

        def apply(db: Database) -> bool:
            still = db.execute("SELECT status FROM orders WHERE decision_id=?", (order["decision_id"],)).fetchone()
            if still is None or still["status"] != "pending":
                return False
            blocked = self.fill_guard(db) if self.fill_guard else None
            if blocked:  # checked inside the fill's own transaction: a halt set a moment ago still wins
                return reject(db, blocked, "cancelled")
            held = db.execute("SELECT qty FROM positions WHERE ticker=?", (order["ticker"],)).fetchone()
            if held and not self.allow_pyramiding:
                return reject(db, "a position is already open (pyramiding off)")
            cash = db.execute("SELECT cash FROM account").fetchone()["cash"]
            if qty * price + fees > cash:
                return reject(db, f"needs {qty * price + fees:.2f} BRL, cash is {cash:.2f}")
            db.execute("UPDATE account SET cash = cash - ?", (qty * price + fees,))
            db.execute("UPDATE orders SET status='filled', updated_at=? WHERE decision_id=?", (ts, order["decision_id"]))
            if held:
                # an add keeps the tighter of the two stops: adding never loosens a stop
                db.execute("UPDATE positions SET entry = (entry*qty + ?*?)/(qty + ?), qty = qty + ?, "
                           "open_fees = open_fees + ?, "
                           "stop = CASE WHEN stop IS NULL OR ? > stop THEN COALESCE(?, stop) ELSE stop END "
                           "WHERE ticker=?", (price, qty, qty, qty, fees, order["stop"], order["stop"],
                                              order["ticker"]))
            else:
                db.execute("INSERT INTO positions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           (order["ticker"], qty, price, fees, order["stop"], order["take_profit"],
                            order["decision_id"], bar.date, None, ts, bar.open))
            return True

        return self._commit(trade, apply)

    def _check_exit(self, pos: dict[str, Any], bar: Bar, ts: str) -> dict[str, Any] | None:
        """Close on the stop or the take-profit touched by ``bar``; a gap fills at the open.

        When one bar touches both, the stop is assumed first (the conservative reading).
        """
        stop, target = pos["stop"], pos["take_profit"]
        if stop is not None and bar.low <= stop:
            return self._close(pos, min(bar.open, stop), bar, ts, "stop")
        if target is not None and bar.high >= target:
            return self._close(pos, max(bar.open, target), bar, ts, "take_profit")
        with self._lock:
            self.db.execute("UPDATE positions SET checked_through=?, last_close=? WHERE ticker=? AND decision_id=?",
                            (bar.date, bar.close, pos["ticker"], pos["decision_id"]))
        return None

    def close_at(self, ticker: str, bar: Bar, ts: str, why: str) -> dict[str, Any] | None:
        """Close ``ticker``'s position at ``bar``'s close (e.g. ``end`` of a backtest window)."""
        pos = self.positions().get(ticker)
        return self._close(pos, bar.close, bar, ts, why) if pos else None

    def _close(self, pos: dict[str, Any], raw_price: float, bar: Bar, ts: str, why: str) -> dict[str, Any] | None:
        price = round(raw_price * (1 - self.costs.slippage_bps / 10_000), 4)
        qty = pos["qty"]
        fees = self.costs.fees(qty * price)
        profit = round((price - pos["entry"]) * qty - fees - pos["open_fees"], 2)
        trade = {"trade_id": f"{pos['decision_id']}:close", "ts": ts, "bar_date": bar.date, "action": f"close_{why}",
                 "ticker": pos["ticker"], "qty": qty, "price": price, "fees": fees, "profit": profit,
                 "decision_id": pos["decision_id"], "mode": "simulation"}

        def apply(db: Database) -> bool:
            db.execute("UPDATE account SET cash = cash + ?", (qty * price - fees,))
            db.execute("DELETE FROM positions WHERE ticker=?", (pos["ticker"],))
            return True

        return self._commit(trade, apply)

    def _commit(self, trade: dict[str, Any], apply: Callable[[Database], bool]) -> dict[str, Any] | None:
        """One transaction: skip a trade id already in the ledger, apply the change, record the trade;
        then append it to trades.jsonl. None when no trade was made (``apply`` may still record why)."""
        with self._lock, self.db.write("ledger") as db:
            done_before = db.execute("SELECT 1 FROM trades WHERE trade_id=?", (trade["trade_id"],)).fetchone()
            if done_before or not apply(db):
                return None  # commits a rejection's status; nothing else was written
            db.execute(f"INSERT INTO trades VALUES ({', '.join('?' * (len(TRADE_COLUMNS) + 1))})",
                       [*(trade[c] for c in TRADE_COLUMNS), next_seq(db, "trades")])
        self._log_trade(trade)
        return trade

    def _log_trade(self, trade: dict[str, Any]) -> None:
        """Append a committed trade to trades.jsonl. A failure (a full disk) is logged and counted, never
        raised: the ledger holds the trade, and the next append that works (or a restart) reconciles the log."""
        try:
            if self._log_behind:
                self.reconcile()  # every committed trade the log lacks, this one included
            else:
                append_jsonl(self.trades_log, trade)
            self._log_behind = False
        except OSError as exc:
            self._log_behind = True
            COUNTERS.inc("trade_log_errors_total", kind=errno.errorcode.get(exc.errno or 0, type(exc).__name__))
            logger.error("{}: trade {} is in the ledger, not yet in the log: {}", self.trades_log, trade["trade_id"], exc)

    # ------------------------------------------------------------------ restart

    def reconcile(self) -> int:
        """Append to trades.jsonl every committed trade it lacks (the ledger is the source of truth)."""
        self.trades_log.parent.mkdir(parents=True, exist_ok=True)
        self.trades_log.touch()  # the log layout exists from the start, trades or not
        logged = {t.get("trade_id") for t in read_jsonl(self.trades_log)}
        missing = [t for t in self.trades() if t["trade_id"] not in logged]
        for trade in missing:
            append_jsonl(self.trades_log, trade)
        if missing:
            logger.warning("reconciled {} trade(s) missing from {}", len(missing), self.trades_log)
        return len(missing)
