"""The dashboard's FastAPI app: a JSON endpoint behind every page, and the pages themselves.

Read-only over the stores the loop writes (the JSONL decision records under LOG_DIR, the ledger in
DATABASE_PATH or DATABASE_URL). The one write is the kill switch (halt, no new buys, resume),
allowed on loopback, and beyond loopback only with DASHBOARD_TOKEN. Record text (LLM reasons,
headlines) is untrusted: the pages only ever insert it as text, never as HTML.

The routes live in agent/dashboard/routes/ (one module per page); this module makes the stores
they are given (agent/dashboard/deps.py) and wraps them in the security headers.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from agent.config import LOOPBACK, Settings
from agent.dashboard.benchmark import Benchmark
from agent.dashboard.deps import BAD_REQUEST, Stores, no_unknown_query
from agent.dashboard.ledger import LedgerReader
from agent.dashboard.records import RecordIndex
from agent.dashboard.routes import api, pages
from agent.dashboard.routes.controls import control_policy
from agent.market.calendar import B3_TZ
from agent.store.jsonl import DecisionSink

PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
# report pages are files on disk: shown in a sandbox (no scripts, no access to this origin)
REPORT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def create_app(settings: Settings, *, market: Any | None = None,
               clock: Callable[[], datetime] = lambda: datetime.now(B3_TZ)) -> FastAPI:
    """The app over ``settings``' stores. ``market`` (the Ibovespa source) and ``clock`` are for tests."""
    reports_dir = Path(settings.dashboard.reports_dir)
    app = FastAPI(title="B3 cascade agent dashboard", version="1", dependencies=[Depends(no_unknown_query)],
                  responses=BAD_REQUEST, docs_url=None, redoc_url=None,  # Swagger/ReDoc load from a CDN: offline
                  description="Read-only views of the agent's decisions, funnel, portfolio and health; the kill "
                              "switch is the one write. Simulation (paper trading) only.")
    app.state.stores = Stores(settings=settings, records=RecordIndex(DecisionSink(settings.logging.dir)),
                              ledger=LedgerReader(settings.store), benchmark=Benchmark(settings, market, clock),
                              policy=control_policy(settings), clock=clock, reports_dir=reports_dir)

    if settings.dashboard.loopback:
        # on loopback only loopback names are served: a web page whose DNS name rebinds to 127.0.0.1 gets nothing
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(LOOPBACK | {"[::1]", *settings.dashboard.allowed_hosts}))
    app.middleware("http")(security_headers)

    app.include_router(api)
    app.mount("/reports", StaticFiles(directory=reports_dir, check_dir=False, html=True), name="reports")
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


async def security_headers(request: Request, call_next):
    """No sniffing, no framing, no referrer, and a CSP that allows only this origin's scripts."""
    response = await call_next(request)
    if request.url.path.startswith("/reports/"):
        response.headers["Content-Security-Policy"] = REPORT_CSP
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
    if request.url.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
