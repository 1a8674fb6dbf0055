"""The kill switch, the dashboard's one write: its state for the header on every page, and halt, no
new buys or resume, allowed on loopback, and beyond loopback only with DASHBOARD_TOKEN."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Header, HTTPException, Request
from loguru import logger

from agent.config import Settings
from agent.dashboard import schemas as S
from agent.dashboard.deps import Clock, Ledger, Policy, SettingsDep
from agent.errors import LedgerUnreachable, NoLedger
from agent.market.calendar import B3_TZ
from agent.trading.kill_switch import TradingState

ACTIONS = {"halt": TradingState.HALTED, "no_new_buys": TradingState.NO_NEW_BUYS, "resume": TradingState.RUNNING}
CONTROL_RESPONSES = {401: {"description": "missing or wrong token", "model": S.Problem},
                     403: {"description": "control refused", "model": S.Problem},
                     409: {"description": "no ledger yet, or one made by an older version", "model": S.Problem},
                     503: {"description": "the ledger cannot be reached now", "model": S.Problem}}

router = APIRouter(tags=["kill switch"])


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


@router.get("/kill-switch", response_model=S.KillSwitchView)
def kill_switch(ledger: Ledger, policy: Policy):
    """RUNNING, NO_NEW_BUYS or HALTED, why and by whom, the last changes, and who may change it here."""
    try:
        ks = ledger.kill_switch()
    except NoLedger as exc:
        return {"available": False, "note": str(exc), "state": None, "reason": None, "changed_at": None,
                "changed_by": None, "log": [], "control": policy}
    return {"available": True, "note": None, **ks, "control": policy}


@router.post("/kill-switch", response_model=S.KillSwitchResult, responses=CONTROL_RESPONSES)
def set_kill_switch(request: Request, settings: SettingsDep, ledger: Ledger, policy: Policy, clock: Clock,
                    command: Annotated[S.KillSwitchCommand, Body()], authorization: Annotated[str, Header()] = None):
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
        changed = ledger.set_state(state, reason, "dashboard", clock().astimezone(B3_TZ).isoformat(timespec="seconds"))
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
