"""The kill switch: RUNNING, NO_NEW_BUYS or HALTED, persisted in SQLite so a restart keeps it.

- RUNNING: the cascade runs and BUYs become paper orders.
- NO_NEW_BUYS: the cascade still runs and records its decisions, but a BUY becomes HOLD and
  pending orders are cancelled. Open positions keep their stops and targets.
- HALTED: no cascade runs (no LLM calls); pending orders are cancelled. Open positions keep
  their stops and targets, because closing on a stop only ever reduces risk.
A breach of the daily-loss or drawdown limit sets HALTED automatically. Only a person resumes
(``python -m agent.loop --resume``), which also restarts the loss baselines from the current equity.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import SecretStr

from agent.config import KillSwitchSettings
from agent.market.calendar import B3_TZ, b3_timestamp
from agent.store.db import Database, check_schema, next_seq, open_database
from agent.trading import queries


class TradingState(StrEnum):
    RUNNING = "RUNNING"
    NO_NEW_BUYS = "NO_NEW_BUYS"
    HALTED = "HALTED"


SCHEMA = """
CREATE TABLE IF NOT EXISTS kill_switch (
    id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, reason TEXT NOT NULL, changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL, day TEXT, day_open DOUBLE PRECISION, peak DOUBLE PRECISION, last_equity DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS kill_switch_log (
    ts TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, changed_by TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS equity_history (
    day TEXT PRIMARY KEY, ts TEXT NOT NULL, equity DOUBLE PRECISION NOT NULL, peak DOUBLE PRECISION NOT NULL);
"""


def fills_blocked(db: Database) -> str | None:
    """The kill switch as seen inside another transaction on the same store: why no order may fill now."""
    try:
        row = db.execute("SELECT state FROM kill_switch WHERE id = 1").fetchone()
    except Exception:  # noqa: BLE001 - no kill switch in this store (a bare ledger)
        return None
    return None if row is None or row["state"] == TradingState.RUNNING.value else f"kill switch is {row['state']}"


def limit_breach(equity: float, day_open: float, peak: float, limits: KillSwitchSettings) -> str | None:
    """Which portfolio limit ``equity`` breaks, if any (pure code, so tests and backtests share it)."""
    if day_open > 0 and (day_open - equity) / day_open >= limits.max_daily_loss:
        return (f"daily loss {(day_open - equity) / day_open:.1%} reached the limit {limits.max_daily_loss:.1%} "
                f"(equity {equity:,.2f} against {day_open:,.2f} at the day's start)")
    if peak > 0 and (peak - equity) / peak >= limits.max_drawdown:
        return (f"drawdown {(peak - equity) / peak:.1%} reached the limit {limits.max_drawdown:.1%} "
                f"(equity {equity:,.2f} against a peak of {peak:,.2f})")
    return None


class KillSwitch:
    def __init__(self, db: Path | str | SecretStr | Database):
        """``db``: the SQLite file (DATABASE_PATH), a Postgres URL (DATABASE_URL) or an open Database, shared
        with the ledger."""
        self.db = open_database(db)
        self.db.script(SCHEMA)
        check_schema(self.db, SCHEMA, "the kill switch")
        self.db.execute("INSERT INTO kill_switch (id, state, reason, changed_at, changed_by) "
                        "VALUES (1, 'RUNNING', 'initial state', ?, 'system') ON CONFLICT DO NOTHING",
                        (b3_timestamp(datetime.now(B3_TZ)),))

    def status(self) -> dict[str, Any]:
        return dict(self.db.execute("SELECT state, reason, changed_at, changed_by, day, day_open, peak "
                                    "FROM kill_switch").fetchone())

    @property
    def state(self) -> TradingState:
        return TradingState(self.status()["state"])

    def set(self, state: TradingState, reason: str, by: str, ts: str) -> bool:
        """Change the state (logged with who and why). Leaving HALTED restarts the loss baselines from
        the current equity (else the old breach would halt again at once). True if it changed."""
        state = TradingState(state)
        with self.db.write("ledger") as db:
            before = db.execute("SELECT state FROM kill_switch").fetchone()["state"]
            if before == state:
                return False
            reset = (", day=NULL, day_open=NULL, peak=NULL"
                     if before == TradingState.HALTED and state != TradingState.HALTED else "")
            db.execute(f"UPDATE kill_switch SET state=?, reason=?, changed_at=?, changed_by=?{reset}",
                       (state.value, reason, ts, by))
            db.execute("INSERT INTO kill_switch_log VALUES (?,?,?,?,?)",
                       (ts, state.value, reason, by, next_seq(db, "kill_switch_log")))
        logger.warning("kill switch: {} -> {} by {}: {}", before, state.value, by, reason)
        return True

    def mark(self, equity: float, day: str, limits: KillSwitchSettings, ts: str) -> str | None:
        """Record the equity (the day's last mark is kept in ``equity_history`` for the dashboard's curve),
        and HALT on a breached limit. Returns the breach.

        The day's opening equity is the last equity marked on an earlier day, so the first mark of a
        session (which already carries that session's move) is compared with the close before it.
        """
        with self.db.write("ledger") as db:
            row = db.execute("SELECT day, day_open, peak, last_equity FROM kill_switch").fetchone()
            if row["day"] == day and row["day_open"] is not None:
                day_open = row["day_open"]
            else:
                day_open = row["last_equity"] if row["day"] is not None and row["last_equity"] is not None else equity
            peak = max(row["peak"] if row["peak"] is not None else max(equity, day_open), equity)
            db.execute("UPDATE kill_switch SET day=?, day_open=?, peak=?, last_equity=?",
                       (day, day_open, peak, equity))
            db.execute("INSERT INTO equity_history (day, ts, equity, peak) VALUES (?,?,?,?) ON CONFLICT (day) "
                       "DO UPDATE SET ts=excluded.ts, equity=excluded.equity, peak=excluded.peak",
                       (day, ts, equity, peak))
        breach = limit_breach(equity, day_open, peak, limits)
        if breach and self.state != TradingState.HALTED:
            self.set(TradingState.HALTED, breach, "limit", ts)
        return breach

    def history(self) -> list[dict[str, Any]]:
        """Every change of state, oldest first."""
        return queries.kill_switch_log(self.db, limit=None)[::-1]
