"""The dashboard's FastAPI app: a JSON endpoint behind every page, and the pages themselves.

Read-only over the stores the loop writes (the JSONL decision records under LOG_DIR, the ledger in
DATABASE_PATH or DATABASE_URL). The one write is the kill switch (halt, no new buys, resume),
allowed on loopback, and beyond loopback only with DASHBOARD_TOKEN. Record text (LLM reasons,
headlines) is untrusted: the pages only ever insert it as text, never as HTML.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Callable
from urllib.parse import urlsplit

import pandas as pd
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from loguru import logger

from agent.config import LOOPBACK, Settings
from agent.dashboard import schemas as S
from agent.dashboard.ledger import LedgerReader, LedgerUnreachable, NoLedger
from agent.dashboard.records import RecordIndex, funnel
from agent.trading.kill_switch import TradingState
from agent.store.jsonl import B3_TZ, DecisionSink
from tools.performance import drawdown_series
from tools.trades import trade_stats

STATIC = Path(__file__).with_name("static")
# route -> (page, title, draws charts): each page is static/pages/<page>.html inside static/shell.html
PAGES = {"/": ("index", "Decisions", False), "/decision/{decision_id}": ("decision", "Decision", False),
         "/funnel": ("funnel", "Funnel", True), "/portfolio": ("portfolio", "Portfolio", True),
         "/health": ("health", "Health", True), "/backtests": ("backtests", "Backtests", False)}
TICKER = r"^[A-Za-z0-9^][A-Za-z0-9.^]{1,14}$"
DECISION_ID = r"^[A-Za-z0-9^.]{2,15}-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9a-f]{12}$|^[A-Za-z0-9^.]{2,15}-no-bar-[0-9a-f]{12}$"
ORIGINS = r"^(loop|one_shot|studio|backtest)$"
IBOV = "^BVSP"
BENCHMARK_TTL_S = 600.0
ERRORS_TAIL = 30
ACTIONS = {"halt": TradingState.HALTED, "no_new_buys": TradingState.NO_NEW_BUYS, "resume": TradingState.RUNNING}
BAD_REQUEST = {400: {"description": "bad query parameters (an unknown one, or since after until)", "model": S.Problem}}
ERROR_RESPONSES = {404: {"description": "not found", "model": S.Problem}}
CONTROL_RESPONSES = {401: {"description": "missing or wrong token", "model": S.Problem},
                     403: {"description": "control refused", "model": S.Problem},
                     409: {"description": "no ledger yet, or one made by an older version", "model": S.Problem},
                     503: {"description": "the ledger cannot be reached now", "model": S.Problem}}


def control_policy(settings: Settings) -> S.Control:
    """Who may halt or resume from the browser: with a token when one is set; without one only on loopback."""
    d, token = settings.dashboard, settings.secrets.dashboard_token
    if token is not None:
        return S.Control(enabled=True, token_required=True, why="DASHBOARD_TOKEN is set: halt and resume need it")
    if d.loopback:
        return S.Control(enabled=True, token_required=False,
                         why=f"bound to {d.bind} (loopback): only this machine can reach the controls")
    return S.Control(enabled=False, token_required=True,
                     why=f"bound to {d.bind}, beyond loopback, and DASHBOARD_TOKEN is not set in .env: "
                         "halt and resume are disabled (use python -m agent.loop --halt)")


class Benchmark:
    """The Ibovespa from the configured market source, fetched at most every BENCHMARK_TTL_S."""

    def __init__(self, settings: Settings, market: Any | None, clock: Callable[[], datetime]):
        self.settings, self._market, self.clock = settings, market, clock
        self._cached: tuple[float, date, Any] | None = None
        self._lock = threading.Lock()

    def market(self) -> Any:
        if self._market is None:
            from agent.market.sources import make_market_provider

            self._market = make_market_provider(self.settings)
        return self._market

    def closes(self, since: date) -> tuple[pd.Series | None, str | None, str | None]:
        """(closes from ``since``, source name, why unavailable)."""
        with self._lock:
            if self._cached and self._cached[1] <= since and time.monotonic() - self._cached[0] < BENCHMARK_TTL_S:
                return self._cached[2]
            try:
                market = self.market()
                days = (self.clock().astimezone(B3_TZ).date() - since).days + 30
                bars = market.get_bars(IBOV, "1d", lookback=max(days, 60))
                close = bars.frame["close"]
                close = close[close.index >= pd.Timestamp(since)]
                out = (close, bars.source, None if len(close) else f"no Ibovespa bars since {since} from {bars.source}")
            except Exception as exc:  # noqa: BLE001 - the curve is still shown without its benchmark
                out = (None, getattr(self._market, "name", None), f"Ibovespa unavailable: {type(exc).__name__}: {exc}")
            self._cached = (time.monotonic(), since, out)
            return out


def create_app(settings: Settings, *, market: Any | None = None,
               clock: Callable[[], datetime] = lambda: datetime.now(B3_TZ)) -> FastAPI:
    """The app over ``settings``' stores. ``market`` (the Ibovespa source) and ``clock`` are for tests."""
    records = RecordIndex(DecisionSink(settings.logging.dir))
    ledger = LedgerReader(settings.store)
    benchmark = Benchmark(settings, market, clock)
    policy = control_policy(settings)
    reports_dir = Path(settings.dashboard.reports_dir)

    app = FastAPI(title="B3 cascade agent dashboard", version="1", dependencies=[Depends(no_unknown_query)],
                  responses=BAD_REQUEST, docs_url=None, redoc_url=None,  # Swagger/ReDoc load from a CDN: offline
                  description="Read-only views of the agent's decisions, funnel, portfolio and health; the kill "
                              "switch is the one write. Simulation (paper trading) only.")

    if settings.dashboard.loopback:
        # on loopback only loopback names are served: a web page whose DNS name rebinds to 127.0.0.1 gets nothing
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted(LOOPBACK | {"[::1]", *settings.dashboard.allowed_hosts}))

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/reports/"):
            # report pages are files on disk: shown in a sandbox (no scripts, no access to this origin)
            response.headers["Content-Security-Policy"] = ("sandbox; default-src 'none'; img-src 'self' data:; "
                                                           "style-src 'unsafe-inline'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def period(since: date | None, until: date | None, default_days: int) -> tuple[date, date]:
        """The funnel's window: until today and the last ``default_days`` days unless given."""
        until = until or clock().astimezone(B3_TZ).date()
        if since is None:
            since = until - timedelta(days=default_days - 1) if until - date.min >= timedelta(days=default_days) else date.min
        return ordered(since, until)

    # ------------------------------------------------------------------ decisions

    @app.get("/api/decisions/latest", response_model=S.LatestDecisions, tags=["decisions"])
    def latest_decisions(origin: Annotated[str, Query(pattern=ORIGINS)] = None):
        """The latest decision per ticker (BUY/HOLD, confidence, where it was discarded)."""
        latest = records.latest_per_ticker(origin)
        defaults = sorted({d for s in latest for d in s.defaults_in_use})
        return {"decisions": [s.public() for s in latest], "defaults_in_use": defaults,
                "skipped_lines": records.skipped}

    @app.get("/api/decisions", response_model=S.DecisionPage, responses=ERROR_RESPONSES, tags=["decisions"])
    def list_decisions(ticker: Annotated[str, Query(pattern=TICKER)] = None,
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

    @app.get("/api/decisions/{decision_id}", response_model=S.DecisionDetail, responses=ERROR_RESPONSES,
             tags=["decisions"])
    def decision_detail(decision_id: Annotated[str, PathParam(pattern=DECISION_ID)], ts: Annotated[datetime, Query()] = None):
        """One decision in full: every layer's model, score, reason and latency, and the snapshots."""
        if ts is not None and ts.tzinfo is None:
            raise HTTPException(400, "ts needs a time zone, e.g. 2025-06-30T12:31:51-03:00")
        found = records.find(decision_id, ts)
        if found is None:
            raise HTTPException(404, f"no decision {decision_id}" + (f" made at {ts.isoformat()}" if ts else ""))
        record, occurrences = found
        try:
            rows = ledger.rows("SELECT status, reason FROM orders WHERE decision_id=?", (decision_id,))
            status, note = (rows[0]["status"], rows[0]["reason"]) if rows else (None, None)
        except NoLedger as exc:
            status, note = None, str(exc)
        return {"record": record, "occurrences": occurrences, "order_status": status, "order_note": note}

    @app.get("/api/funnel", response_model=S.Funnel, responses=ERROR_RESPONSES, tags=["decisions"])
    def funnel_view(since: Annotated[date, Query()] = None, until: Annotated[date, Query()] = None,
                    ticker: Annotated[str, Query(pattern=TICKER)] = None,
                    origin: Annotated[str, Query(pattern=ORIGINS)] = None, unique: bool = True):
        """Per layer, how many decisions reached it, passed, were discarded or failed (default: the last 7 days,
        today included). ``unique``: each decision once (its BUY, if the loop bought on that bar)."""
        since, until = period(since, until, 7)
        chosen = records.select(ticker=ticker.upper() if ticker else None, since=since, until=until, origin=origin)
        return {"since": since.isoformat(), "until": until.isoformat(), "unique": unique, **funnel(chosen, unique)}

    # ------------------------------------------------------------------ portfolio

    @app.get("/api/portfolio", response_model=S.Portfolio, tags=["portfolio"])
    def portfolio():
        """Cash, open positions (marked at the last close the broker saw) and pending orders."""
        try:
            account, positions, pending = ledger.account(), ledger.positions(), ledger.pending_orders()
        except NoLedger as exc:
            return {"available": False, "note": str(exc), "initial": None, "cash": None, "equity": None,
                    "positions": [], "pending_orders": []}
        equity = account["cash"] + sum(p["market_value"] for p in positions)
        return {"available": True, "note": None, "initial": account["initial"], "cash": account["cash"],
                "equity": round(equity, 2), "positions": positions, "pending_orders": pending}

    @app.get("/api/trades", response_model=S.Trades, tags=["portfolio"])
    def trades(limit: Annotated[int, Query(ge=1, le=5000)] = 200,
               ticker: Annotated[str, Query(pattern=TICKER)] = None):
        """Fills, newest first; closes carry their P&L. The totals cover every close, not only this page."""
        try:
            rows = ledger.trades()
        except NoLedger as exc:
            return {"available": False, "note": str(exc), "total": 0, "realised_pnl": 0.0, "closed": 0,
                    "win_rate": None, "trades": []}
        if ticker:
            rows = [r for r in rows if r["ticker"] == ticker.upper()]
        try:
            stats = trade_stats(rows[::-1])  # the backtest's own definitions (a win: a close with profit > 0)
        except ValueError as exc:  # a ledger edited by hand
            return {"available": False, "note": f"the trades cannot be summarised: {exc}", "total": len(rows),
                    "realised_pnl": 0.0, "closed": 0, "win_rate": None, "trades": rows[:limit]}
        return {"available": True, "note": None, "total": len(rows),
                "realised_pnl": round(sum(r["profit"] for r in rows if r["profit"] is not None), 2),
                "closed": stats.trades, "win_rate": stats.win_rate, "trades": rows[:limit]}

    @app.get("/api/equity", response_model=S.Equity, tags=["portfolio"])
    def equity():
        """The paper portfolio's equity per day (its last mark), drawdown from peak, and the Ibovespa."""
        empty = {"points": [], "max_drawdown": None, "benchmark_name": "Ibovespa", "benchmark_source": None,
                 "benchmark_note": None, "benchmark": []}
        try:
            rows = ledger.equity_history()
        except NoLedger as exc:
            return {"available": False, "note": str(exc), **empty}
        if not rows:
            return {"available": False, "note": "no equity marked yet: the loop marks the portfolio each cycle",
                    **empty}
        # the curve's own running peak (the kill switch's restarts when a person resumes)
        curve = pd.Series([r["equity"] for r in rows], index=pd.DatetimeIndex([r["day"] for r in rows]), dtype=float)
        try:
            drawdown = drawdown_series(curve)
        except ValueError as exc:  # zeros, gaps or repeats: tools/performance refuses to measure them
            return {"available": False, "note": f"the equity history cannot be measured: {exc}", **empty}
        points = [{"day": r["day"], "equity": r["equity"], "peak": float(peak), "drawdown": float(dd)}
                  for r, peak, dd in zip(rows, curve.cummax(), drawdown)]
        first = date.fromisoformat(rows[0]["day"])
        close, source, note = benchmark.closes(first)
        bench = []
        if close is not None and len(close):
            scale = rows[0]["equity"] / float(close.iloc[0])
            bench = [{"day": ts.date().isoformat(), "value": round(float(v) * scale, 2)} for ts, v in close.items()]
            if source == "sim":
                note = "simulated Ibovespa (MARKET_SOURCE=sim): synthetic prices, not the real index"
        return {"available": True, "note": None, "points": points, "max_drawdown": max(p["drawdown"] for p in points),
                "benchmark_name": "Ibovespa", "benchmark_source": source, "benchmark_note": note, "benchmark": bench}

    # ------------------------------------------------------------------ kill switch

    @app.get("/api/kill-switch", response_model=S.KillSwitchView, tags=["kill switch"])
    def kill_switch():
        """RUNNING, NO_NEW_BUYS or HALTED, why and by whom, the last changes, and who may change it here."""
        try:
            ks = ledger.kill_switch()
        except NoLedger as exc:
            return {"available": False, "note": str(exc), "state": None, "reason": None, "changed_at": None,
                    "changed_by": None, "log": [], "control": policy}
        return {"available": True, "note": None, **ks, "control": policy}

    @app.post("/api/kill-switch", response_model=S.KillSwitchResult, responses=CONTROL_RESPONSES,
              tags=["kill switch"])
    def set_kill_switch(request: Request, command: Annotated[S.KillSwitchCommand, Body()],
                        authorization: Annotated[str, Header()] = None):
        """Halt, stop new buys, or resume (as ``python -m agent.loop --halt/--no-new-buys/--resume``)."""
        check_same_origin(request)
        if not policy.enabled:
            raise HTTPException(403, policy.why)
        if policy.token_required:
            token = settings.secrets.dashboard_token.get_secret_value() if settings.secrets.dashboard_token else ""
            scheme, _, given = (authorization or "").strip().partition(" ")
            if scheme.lower() != "bearer" or not given.strip() or \
                    not hmac.compare_digest(given.strip().encode(), token.encode()):
                raise HTTPException(401, "halt and resume need the dashboard token (DASHBOARD_TOKEN) as a Bearer token")
        state = ACTIONS[command.action]
        reason = command.reason.strip() or f"{command.action.replace('_', ' ')} from the dashboard"
        try:
            changed = ledger.set_state(state, reason, "dashboard",
                                       clock().astimezone(B3_TZ).isoformat(timespec="seconds"))
        except LedgerUnreachable as exc:
            raise HTTPException(503, str(exc)) from None
        except NoLedger as exc:
            raise HTTPException(409, str(exc)) from None
        logger.warning("dashboard: kill switch {} requested from {}: {}", state.value,
                       request.client.host if request.client else "?", "changed" if changed else "already so")
        return {"changed": changed, "state": state.value}

    def check_same_origin(request: Request) -> None:
        """Refuse a POST that a page on another site makes the browser send. (A form or text body is
        already refused as not JSON, and a cross-site JSON body needs a CORS preflight this app never grants.)"""
        site = request.headers.get("sec-fetch-site")
        if site and site not in ("same-origin", "none"):
            raise HTTPException(403, f"cross-site request ({site}) refused")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-site request from {origin} refused")

    # ------------------------------------------------------------------ health

    @app.get("/api/health", response_model=S.Health, tags=["health"])
    def health(cycles: Annotated[int, Query(ge=1, le=500)] = 20):
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
        stall_after = settings.loop.stall_after_intervals * newest["interval_s"]
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

    # ------------------------------------------------------------------ backtests

    @app.get("/api/backtests", response_model=S.Backtests, tags=["backtests"])
    def backtests():
        """Reports under dashboard.reports_dir (python -m agent.backtest --report DIR), newest first."""
        out = []
        if reports_dir.is_dir():
            for folder in reports_dir.iterdir():
                try:
                    folder.name.encode("utf-8")
                    if folder.is_dir() and (folder / "metrics.json").is_file():
                        out.append(report_summary(folder))
                except (UnicodeError, OSError):  # a name the page cannot carry, or a folder gone meanwhile
                    continue
        out.sort(key=lambda r: r["modified"], reverse=True)
        return {"reports_dir": str(reports_dir.resolve()), "reports": out}

    app.mount("/reports", StaticFiles(directory=reports_dir, check_dir=False, html=True), name="reports")

    # ------------------------------------------------------------------ the pages

    @app.get("/api/status", response_model=S.AppStatus, tags=["status"])
    def status():
        """What the pages need to know about this server: poll interval, stores, control policy."""
        return {"poll_s": settings.dashboard.poll_s, "bind": settings.dashboard.bind, "port": settings.dashboard.port,
                "log_dir": str(Path(settings.logging.dir).resolve()), "ledger": ledger.where, "control": policy}

    for route, (page, title, charts) in PAGES.items():
        app.add_api_route(route, page_handler(page, title, charts), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/vendor/plotly.min.js", plotly_js, include_in_schema=False)
    app.add_api_route("/favicon.ico", lambda: Response(status_code=204), include_in_schema=False)
    return app


def ordered(since: date, until: date) -> tuple[date, date]:
    """A date range, or a 400 when it runs backwards."""
    if since > until:
        raise HTTPException(400, f"since ({since}) is after until ({until})")
    return since, until


def no_unknown_query(request: Request) -> None:
    """A misspelt filter (``?tikcer=PETR4``) is an error, not silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.url.path.startswith("/api/"):
        return  # the pages read their own parameters (a decision page's ?ts=) in the browser
    allowed = {p.alias for p in dependant.query_params}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise HTTPException(400, f"unknown query parameter(s) {', '.join(unknown)}; this endpoint takes "
                                 f"{', '.join(sorted(allowed)) or 'none'}")


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


def plotly_js() -> Response:
    """Plotly's browser bundle, from the plotly package: the pages work offline, no CDN."""
    from importlib.util import find_spec

    spec = find_spec("plotly")
    bundle = Path(spec.origin).parent / "package_data" / "plotly.min.js" if spec and spec.origin else None
    if bundle is None or not bundle.is_file():
        return JSONResponse({"detail": "plotly.min.js not found in the plotly package"}, status_code=500)
    return FileResponse(bundle, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})


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


def report_summary(folder: Path) -> dict[str, Any]:
    modified = datetime.fromtimestamp((folder / "metrics.json").stat().st_mtime, B3_TZ).isoformat(timespec="seconds")
    html = f"/reports/{folder.name}/report.html" if (folder / "report.html").is_file() else None
    try:
        summary = S.ReportSummary.from_payload(json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
        return {"name": folder.name, "modified": modified, "html": html, "metrics": summary.model_dump(), "note": None}
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not JSON, or not a report's shape
        return {"name": folder.name, "modified": modified, "html": html, "metrics": None,
                "note": f"metrics.json unreadable: {type(exc).__name__}"}
