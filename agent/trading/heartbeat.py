"""The loop's heartbeat, persisted: one row per cycle in the ledger's database.

Prometheus sees the running process only; the dashboard is another process (and may start while
the loop is down), so it reads the last cycles, their failures and the data's age from here.
"""

from __future__ import annotations

import json
from typing import Any

from agent.store.db import Database, check_schema, next_seq

SCHEMA = """
CREATE TABLE IF NOT EXISTS loop_cycles (
    seq INTEGER NOT NULL, ts TEXT NOT NULL, cycle INTEGER NOT NULL, took_s DOUBLE PRECISION NOT NULL,
    buy INTEGER NOT NULL, hold INTEGER NOT NULL, failed INTEGER NOT NULL, skipped INTEGER NOT NULL,
    interrupted INTEGER NOT NULL, error TEXT, interval_s DOUBLE PRECISION NOT NULL, provider TEXT NOT NULL,
    data_source TEXT NOT NULL, last_bars TEXT NOT NULL, sleeping_until TEXT);
"""
KEEP_CYCLES = 5000  # about 17 days at the default 5-minute interval


class LoopHealth:
    COLUMNS = ("seq", "ts", "cycle", "took_s", "buy", "hold", "failed", "skipped", "interrupted", "error", "interval_s",
               "provider", "data_source", "last_bars", "sleeping_until")

    def __init__(self, db: Database):
        self.db = db
        self.db.script(SCHEMA)
        check_schema(self.db, SCHEMA, "the loop heartbeat")

    def record(self, *, ts: str, cycle: int, took_s: float, counts: dict[str, int], interrupted: bool,
               error: str | None, interval_s: float, provider: str, data_source: str,
               last_bars: dict[str, str], sleeping_until: str | None = None) -> None:
        """One finished (or failed) cycle, or the loop going to sleep until B3 opens (``sleeping_until``).
        Old rows beyond KEEP_CYCLES are dropped in the same transaction."""
        with self.db.write("ledger") as db:
            seq = next_seq(db, "loop_cycles")
            db.execute("INSERT INTO loop_cycles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (seq, ts, cycle, took_s, counts.get("BUY", 0), counts.get("HOLD", 0), counts.get("failed", 0),
                        counts.get("skipped", 0), int(interrupted), error, interval_s, provider, data_source,
                        json.dumps(last_bars, sort_keys=True), sleeping_until))
            db.execute("DELETE FROM loop_cycles WHERE seq <= ?", (seq - KEEP_CYCLES,))

    @staticmethod
    def decode(rows) -> list[dict[str, Any]]:
        """Rows of loop_cycles as plain values (the flags as bools, the last bars as a dict)."""
        out = []
        for row in rows:
            item = dict(row)
            item["interrupted"] = bool(item["interrupted"])
            item["last_bars"] = json.loads(item["last_bars"])
            out.append(item)
        return out
