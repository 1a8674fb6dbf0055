"""The HTML pages (each static/pages/<page>.html inside static/shell.html), the Plotly bundle they
draw with, and /api/status, what every page asks the server first."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from agent.dashboard import schemas as S
from agent.dashboard.deps import Ledger, Policy, SettingsDep

STATIC = Path(__file__).resolve().parent.parent / "static"
# route -> (page, title, draws charts)
PAGES = {"/": ("index", "Decisions", False), "/decision/{decision_id}": ("decision", "Decision", False),
         "/funnel": ("funnel", "Funnel", True), "/portfolio": ("portfolio", "Portfolio", True),
         "/health": ("health", "Health", True), "/backtests": ("backtests", "Backtests", False)}

status_router = APIRouter(tags=["status"])
router = APIRouter(include_in_schema=False)


@status_router.get("/status", response_model=S.AppStatus)
def status(settings: SettingsDep, ledger: Ledger, policy: Policy):
    """What the pages need to know about this server: poll interval, stores, control policy."""
    return {"poll_s": settings.dashboard.poll_s, "bind": settings.dashboard.bind, "port": settings.dashboard.port,
            "log_dir": str(Path(settings.logging.dir).resolve()), "ledger": ledger.where, "control": policy}


def page_handler(page: str, title: str, charts: bool) -> Callable[[], HTMLResponse]:
    """The page's body in the shared shell (header, kill switch, banners), with its scripts."""
    scripts = ('    <script src="/vendor/plotly.min.js"></script>\n' if charts else "") + \
        f'    <script src="/static/app.js"></script>\n    <script src="/static/{page}.js"></script>\n'
    html = ((STATIC / "shell.html").read_text(encoding="utf-8").replace("{title}", title)
            .replace("{scripts}", scripts).replace("{page}", page)
            .replace("{body}", (STATIC / "pages" / f"{page}.html").read_text(encoding="utf-8")))

    def serve() -> HTMLResponse:
        return HTMLResponse(html)
    return serve


for route, (page, title, charts) in PAGES.items():
    router.add_api_route(route, page_handler(page, title, charts))


@router.get("/vendor/plotly.min.js")
def plotly_js() -> Response:
    """Plotly's browser bundle, from the plotly package: the pages work offline, no CDN."""
    from importlib.util import find_spec

    spec = find_spec("plotly")
    bundle = Path(spec.origin).parent / "package_data" / "plotly.min.js" if spec and spec.origin else None
    if bundle is None or not bundle.is_file():
        return JSONResponse({"detail": "plotly.min.js not found in the plotly package"}, status_code=500)
    return FileResponse(bundle, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)
