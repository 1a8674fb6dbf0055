"""What the routes are given: the app's stores (through ``Depends``), and the parameters they share.

``create_app`` puts one ``Stores`` on ``app.state``; each route names only what it reads
(``records: Records``, ``ledger: Ledger``...), so a route's signature says which stores it touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Callable

from fastapi import Depends, HTTPException, Request

from agent.config import Settings
from agent.dashboard import schemas as S
from agent.dashboard.benchmark import Benchmark
from agent.dashboard.ledger import LedgerReader
from agent.dashboard.records import RecordIndex
from agent.market.calendar import B3_TZ

TICKER = r"^[A-Za-z0-9^][A-Za-z0-9.^]{1,14}$"
DECISION_ID = r"^[A-Za-z0-9^.]{2,15}-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9a-f]{12}$|^[A-Za-z0-9^.]{2,15}-no-bar-[0-9a-f]{12}$"
ORIGINS = r"^(loop|one_shot|studio|backtest)$"
BAD_REQUEST = {400: {"description": "bad query parameters (an unknown one, or since after until)", "model": S.Problem}}
ERROR_RESPONSES = {404: {"description": "not found", "model": S.Problem}}


@dataclass(frozen=True)
class Stores:
    """Everything the routes read, made once per app."""

    settings: Settings
    records: RecordIndex
    ledger: LedgerReader
    benchmark: Benchmark
    policy: S.Control
    clock: Callable[[], datetime]
    reports_dir: Path


def stores(request: Request) -> Stores:
    return request.app.state.stores


def settings(request: Request) -> Settings:
    return stores(request).settings


def records(request: Request) -> RecordIndex:
    return stores(request).records


def ledger(request: Request) -> LedgerReader:
    return stores(request).ledger


def benchmark(request: Request) -> Benchmark:
    return stores(request).benchmark


def policy(request: Request) -> S.Control:
    return stores(request).policy


def clock(request: Request) -> Callable[[], datetime]:
    return stores(request).clock


def reports_dir(request: Request) -> Path:
    return stores(request).reports_dir


SettingsDep = Annotated[Settings, Depends(settings)]
Records = Annotated[RecordIndex, Depends(records)]
Ledger = Annotated[LedgerReader, Depends(ledger)]
BenchmarkDep = Annotated[Benchmark, Depends(benchmark)]
Policy = Annotated[S.Control, Depends(policy)]
Clock = Annotated[Callable[[], datetime], Depends(clock)]
ReportsDir = Annotated[Path, Depends(reports_dir)]


def ordered(since: date, until: date) -> tuple[date, date]:
    """A date range, or a 400 when it runs backwards."""
    if since > until:
        raise HTTPException(400, f"since ({since}) is after until ({until})")
    return since, until


def period(now: datetime, since: date | None, until: date | None, default_days: int) -> tuple[date, date]:
    """A window ending ``until`` (default: today in B3) and covering ``default_days`` days unless ``since`` is given."""
    until = until or now.astimezone(B3_TZ).date()
    if since is None:
        since = until - timedelta(days=default_days - 1) if until - date.min >= timedelta(days=default_days) else date.min
    return ordered(since, until)


def no_unknown_query(request: Request) -> None:
    """A misspelt filter (``?tikcer=PETR4``) is an error, not silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.url.path.startswith("/api/"):
        return  # the pages read their own parameters (a decision page's ?ts=) in the browser
    allowed = {p.alias for p in dependant.query_params}  # the stores' dependencies take none
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise HTTPException(400, f"unknown query parameter(s) {', '.join(unknown)}; this endpoint takes "
                                 f"{', '.join(sorted(allowed)) or 'none'}")
