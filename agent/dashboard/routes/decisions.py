"""The decisions page's API: the latest decision per ticker, the filtered list, one decision in full,
and the cascade funnel."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
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
    SettingsDep,
    ordered,
    period,
)
from agent.dashboard.records import funnel
from agent.errors import NoLedger

router = APIRouter(tags=["decisions"])
# a chart's file as records name it, relative to LOG_DIR (layers/chart.py chart_file): nothing else is served
CHART_FILE = re.compile(r"^charts/[0-9]{4}-[0-9]{2}/[A-Za-z0-9^.]{2,15}-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9a-f]{12}\.png$")


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


@router.get("/decisions/{decision_id}/chart", include_in_schema=False)
def decision_chart(records: Records, settings: SettingsDep, decision_id: Annotated[str, PathParam(pattern=DECISION_ID)],
                   ts: Annotated[datetime, Query()] = None) -> Response:
    """The PNG the final layer was shown (layers/chart.py, under LOG_DIR/charts), or 404 when it got none."""
    if ts is not None and ts.tzinfo is None:
        raise HTTPException(400, "ts needs a time zone, e.g. 2025-06-30T12:31:51-03:00")
    found = records.find(decision_id, ts)
    image = next((r.get("image") for r in (found[0].get("layers") or []) if isinstance(r, dict) and r.get("image")),
                 None) if found else None
    file = image.get("file") if isinstance(image, dict) else None
    path = Path(settings.logging.dir) / file if isinstance(file, str) and CHART_FILE.match(file) else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"no chart for decision {decision_id}")
    return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/funnel", response_model=S.Funnel, responses=ERROR_RESPONSES)
def funnel_view(records: Records, clock: Clock, since: Annotated[date, Query()] = None,
                until: Annotated[date, Query()] = None, ticker: Annotated[str, Query(pattern=TICKER)] = None,
                origin: Annotated[str, Query(pattern=ORIGINS)] = None, unique: bool = True):
    """Per layer, how many decisions reached it, passed, were discarded or failed (default: the last 7 days,
    today included). ``unique``: each decision once (its BUY, if the loop bought on that bar)."""
    since, until = period(clock(), since, until, 7)
    chosen = records.select(ticker=ticker.upper() if ticker else None, since=since, until=until, origin=origin)
    return {"since": since.isoformat(), "until": until.isoformat(), "unique": unique, **funnel(chosen, unique)}
