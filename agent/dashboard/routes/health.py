"""The health page's API: the loop's last cycles from its heartbeat, whether it is running, sleeping,
late or stalled, the age of each ticker's last bar, and the tail of errors.log."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query

from agent.dashboard import schemas as S
from agent.dashboard.deps import Clock, Ledger, Records, SettingsDep
from agent.errors import NoLedger
from agent.market.calendar import B3_TZ

ERRORS_TAIL = 30

router = APIRouter(tags=["health"])


@router.get("/health", response_model=S.Health)
def health(settings: SettingsDep, records: Records, ledger: Ledger, clock: Clock,
           cycles: Annotated[int, Query(ge=1, le=500)] = 20):
    """The last cycles, how long since one finished, the age of each ticker's last bar, recent errors."""
    now = clock()
    errors = tail(settings.logging.dir / "errors.log", ERRORS_TAIL)
    base = {"errors_log": errors, "skipped_record_lines": records.skipped, "staleness": []}
    try:
        rows = ledger.cycles(cycles)
    except NoLedger as exc:
        return {"available": False, "note": str(exc), "status": "unknown", "status_reason": str(exc),
                "last_cycle": None, "age_s": None, "cycles": [], **base}
    finished = [r for r in rows if not r["sleeping_until"]]
    if not rows:
        return {"available": True, "note": None, "status": "never_ran", "status_reason": "no cycle recorded yet",
                "last_cycle": None, "age_s": None, "cycles": [], **base}
    newest, last = rows[0], (finished[0] if finished else rows[0])
    age = max((now - datetime.fromisoformat(newest["ts"])).total_seconds(), 0.0)
    stall_after = max(settings.loop.stall_after_intervals * newest["interval_s"], settings.loop.min_stall_s)
    wake = datetime.fromisoformat(newest["sleeping_until"]) if newest["sleeping_until"] else None
    if wake is not None and now < wake + timedelta(seconds=stall_after):
        status, why = "sleeping", f"B3 is closed: the loop sleeps until {wake.isoformat()}"
    elif age > stall_after:
        status, why = "stalled", (f"nothing from the loop for {age:.0f}s (stall after {stall_after:.0f}s): "
                                  "it may be stopped or hung")
    elif last["error"]:
        status, why = "late", f"the last cycle failed: {last['error']}"
    elif age > 1.5 * last["interval_s"] + last["took_s"]:
        status, why = "late", f"the last cycle finished {age:.0f}s ago; one is expected every {last['interval_s']:.0f}s"
    else:
        status, why = "ok", f"last cycle {age:.0f}s ago"
    today = now.astimezone(B3_TZ).date()
    staleness = [{"ticker": t, "last_bar": d, "age_days": (today - date.fromisoformat(d)).days}
                 for t, d in sorted(last["last_bars"].items())]
    return {"available": True, "note": None, "status": status, "status_reason": why,
            "last_cycle": last if finished else None, "age_s": age, "cycles": finished,
            **{**base, "staleness": staleness}}


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file (at most the last 64 KiB are read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(size - 65536, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
