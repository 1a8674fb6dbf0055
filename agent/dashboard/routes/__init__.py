"""The dashboard's routes: ``api``, the JSON behind every page (under /api, one module per page), and
``pages.router``, the HTML."""

from fastapi import APIRouter

from agent.dashboard.routes import (
    backtests,
    controls,
    decisions,
    health,
    pages,
    portfolio,
)

api = APIRouter(prefix="/api")
for part in (decisions.router, portfolio.router, controls.router, health.router, backtests.router,
             pages.status_router):
    api.include_router(part)
