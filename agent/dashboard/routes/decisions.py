"""The decisions page's API: the latest decision per ticker, the filtered list, one decision in full,
and the cascade funnel."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam

from agent.dashboard import schemas as S
from agent.dashboard.deps import (
    DECISION_ID,
    ERROR_RESPONSES,
    ORIGINS,
    TICKER,
    Clock,
    Ledger,
    Records,
    ordered,
    period,
)
from agent.dashboard.records import funnel
from agent.errors import NoLedger

router = APIRouter(tags=["decisions"])


# registered before /decisions/{decision_id}, which would otherwise claim "latest"
@router.get("/decisions/latest", response_model=S.LatestDecisions)
def latest_decisions(records: Records, origin: Annotated[str, Query(pattern=ORIGINS)] = None):
    """The latest decision per ticker (BUY/HOLD, confidence, where it was discarded)."""
    latest = records.latest_per_ticker(origin)
    defaults = sorted({d for s in latest for d in s.defaults_in_use})
    return {"decisions": [s.public() for s in latest], "defaults_in_use": defaults, "skipped_lines": records.skipped}


@router.get("/decisions", response_model=S.DecisionPage, responses=ERROR_RESPONSES)
def list_decisions(records: Records, ticker: Annotated[str, Query(pattern=TICKER)] = None,
                   since: Annotated[date, Query()] = None, until: Annotated[date, Query()] = None,
                   decision: Annotated[str, Query(pattern="^(BUY|HOLD)$")] = None,
                   origin: Annotated[str, Query(pattern=ORIGINS)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0):
    """Decisions newest first, filtered by ticker, B3 date range, outcome and origin."""
    if since and until:
        ordered(since, until)
    found = records.select(ticker=ticker.upper() if ticker else None, since=since, until=until,
                           decision=decision, origin=origin)[::-1]
    return {"total": len(found), "offset": offset, "decisions": [s.public() for s in found[offset:offset + limit]]}


@router.get("/decisions/{decision_id}", response_model=S.DecisionDetail, responses=ERROR_RESPONSES)
def decision_detail(records: Records, ledger: Ledger, decision_id: Annotated[str, PathParam(pattern=DECISION_ID)],
                    ts: Annotated[datetime, Query()] = None):
    """One decision in full: every layer's model, score, reason and latency, and the snapshots."""
    if ts is not None and ts.tzinfo is None:
        raise HTTPException(400, "ts needs a time zone, e.g. 2025-06-30T12:31:51-03:00")
    found = records.find(decision_id, ts)
    if found is None:
        raise HTTPException(404, f"no decision {decision_id}" + (f" made at {ts.isoformat()}" if ts else ""))
    record, occurrences = found
    try:
        order = ledger.order_outcome(decision_id)
        status, note = (order["status"], order["reason"]) if order else (None, None)
    except NoLedger as exc:
        status, note = None, str(exc)
    return {"record": record, "occurrences": occurrences, "order_status": status, "order_note": note}


@router.get("/funnel", response_model=S.Funnel, responses=ERROR_RESPONSES)
def funnel_view(records: Records, clock: Clock, since: Annotated[date, Query()] = None,
                until: Annotated[date, Query()] = None, ticker: Annotated[str, Query(pattern=TICKER)] = None,
                origin: Annotated[str, Query(pattern=ORIGINS)] = None, unique: bool = True):
    """Per layer, how many decisions reached it, passed, were discarded or failed (default: the last 7 days,
    today included). ``unique``: each decision once (its BUY, if the loop bought on that bar)."""
    since, until = period(clock(), since, until, 7)
    chosen = records.select(ticker=ticker.upper() if ticker else None, since=since, until=until, origin=origin)
    return {"since": since.isoformat(), "until": until.isoformat(), "unique": unique, **funnel(chosen, unique)}
