"""The dashboard against hostile or odd inputs and failing stores, one test per way it once broke
(found by review): a rebinding DNS name, cross-site posts, malformed record lines, files replaced
under it, a ledger moved away, Postgres down, an older ledger, pyramided trades, a resumed peak, a
loop that failed or sleeps, and odd backtest folders."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.config import load_settings
from agent.dashboard.app import create_app
from agent.dashboard.server import url_of
from agent.errors import ConfigError
from agent.store.db import open_database
from agent.store.jsonl import DecisionSink, append_jsonl
from agent.trading.broker import PaperBroker
from agent.trading.heartbeat import LoopHealth
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.conftest import require_shared_data
from tests.dashboard.test_dashboard_api import client_for, post
from tests.support.dashboard_store import TICKERS, populate, settings_for
from tests.test_cli import closed_port

NOW = datetime(2025, 6, 30, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def small(tmp_path):
    require_shared_data()
    return populate(tmp_path, tmp_path / "ledger.db", sessions=3)


# ---------------------------------------------------------------- who may talk to it

def test_a_page_on_a_rebinding_dns_name_gets_nothing(small):
    app = create_app(small.settings, clock=lambda: small.now)
    evil = TestClient(app, base_url="http://attacker.example:8050")
    assert evil.get("/api/decisions/latest").status_code == 400
    response = evil.post("/api/kill-switch", json={"action": "halt"}, headers={"Origin": "http://attacker.example:8050"})
    assert response.status_code == 400
    assert KillSwitch(small.settings.store).state == TradingState.RUNNING
    for host in ("http://localhost:8050", "http://127.0.0.1:8050", "http://[::1]:8050"):
        assert TestClient(app, base_url=host).get("/api/status").status_code == 200, host
    proxied = settings_for(small.settings.logging.dir.parent, small.settings.database_path,
                           **{"dashboard.allowed_hosts": "agent.home.lan"})
    assert TestClient(create_app(proxied), base_url="http://agent.home.lan").get("/api/status").status_code == 200


def test_cross_site_posts_extra_fields_and_token_forms(small, tmp_path):
    c = client_for(small.settings, small.now)
    assert post(c, "halt", **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert post(c, "halt", **{"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert c.post("/api/kill-switch", json={"action": "halt", "size": 10}).status_code == 422
    assert KillSwitch(small.settings.store).state == TradingState.RUNNING
    token = "a-long-enough-token-123"
    with_token = settings_for(tmp_path, small.settings.database_path, **{"secrets.dashboard_token": token})
    c = client_for(with_token, small.now)
    assert post(c, "halt", Authorization=f"bearer {token}").json()["state"] == "HALTED"  # the scheme is case-blind
    assert post(c, "resume", Authorization=token).status_code == 401  # no scheme
    with pytest.raises(ConfigError, match="DASHBOARD_TOKEN.*16 characters"):
        load_settings(env_file=None, environ={"DASHBOARD_TOKEN": "short"})


def test_the_announced_url_of_an_ipv6_bind_is_bracketed():
    assert url_of("::1", 8050) == "http://[::1]:8050/"
    assert url_of("127.0.0.1", 8050) == "http://127.0.0.1:8050/"


# ---------------------------------------------------------------- decision records

@pytest.mark.parametrize("change", [
    {"confidence": "high"}, {"bar_date": 20250627}, {"discarded_at": ["x"]}, {"defaults_in_use": "embedded_llm"},
    {"layers": [{"layer": "sentiment", "passed": True, "error": 5}]}, {"ts": "2025-06-27T17:30:00"},
    {"decision": "SELL"}, {"ticker": None},
])
def test_a_malformed_record_is_skipped_and_counted_never_a_500(small, change):
    sink = DecisionSink(small.settings.logging.dir)
    path = sink.write({**small.records[-1], "ts": small.now.isoformat()})
    append_jsonl(path, {**small.records[-1], **change})
    c = client_for(small.settings, small.now)
    latest = c.get("/api/decisions/latest")
    assert latest.status_code == 200 and latest.json()["skipped_lines"] == 1
    for url in ("/api/decisions", "/api/funnel?since=2025-01-01", f"/api/decisions/{small.records[-1]['decision_id']}"):
        assert c.get(url).status_code == 200, url


def test_a_deeply_nested_line_is_skipped(small):
    path = DecisionSink(small.settings.logging.dir).files()[-1][1]
    with open(path, "a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    c = client_for(small.settings, small.now)
    assert c.get("/api/decisions/latest").json()["skipped_lines"] == 1
    assert c.get("/api/decisions").json()["total"] == len(small.records)


def test_the_loops_buy_stands_for_its_bar_after_the_re_decisions(small):
    """The loop re-decides an unchanged bar every cycle; once the BUY is acted on, later records say HOLD."""
    buy = next(r for r in reversed(small.records) if r["decision"] == "BUY")
    later = datetime.fromisoformat(buy["ts"]) + timedelta(minutes=5)
    for n in range(2):
        DecisionSink(small.settings.logging.dir).write(
            {**buy, "decision": "HOLD", "discarded_at": "portfolio", "reason": "BUY blocked: already acted on",
             "ts": (later + timedelta(minutes=5 * n)).isoformat()})
    c = client_for(small.settings, small.now)
    unique = c.get("/api/funnel", params={"since": "2025-01-01"}).json()
    every = c.get("/api/funnel", params={"since": "2025-01-01", "unique": "false"}).json()
    buys = sum(r["decision"] == "BUY" for r in small.records)
    assert unique["buy"] == buys and unique["decisions"] == len(small.records)
    assert every["decisions"] == len(small.records) + 2 and every["blocked_after_layers"]["portfolio"] >= 2
    if buy["bar_date"] == small.records[-1]["bar_date"]:  # the newest PETR4 decision was that BUY
        latest = {d["ticker"]: d for d in c.get("/api/decisions/latest").json()["decisions"]}
        assert latest["PETR4"]["decision"] == "BUY"


def test_a_record_file_replaced_under_the_same_name_is_read_again(small):
    c = client_for(small.settings, small.now)
    before = c.get("/api/decisions").json()["total"]
    path = DecisionSink(small.settings.logging.dir).files()[-1][1]
    gone = json.loads(path.read_text().splitlines()[0])
    path.unlink()
    fresh = {**small.records[-1], "ticker": "BBAS3", "decision_id": "BBAS3-2025-06-27-aaaaaaaaaaaa"}
    append_jsonl(path, fresh)
    body = c.get("/api/decisions").json()
    assert body["total"] == before - len(TICKERS) + 1
    assert any(d["ticker"] == "BBAS3" for d in body["decisions"])
    assert c.get(f"/api/decisions/{gone['decision_id']}").status_code == 404


# ---------------------------------------------------------------- the ledger

def test_a_ledger_moved_away_and_replaced_is_reopened(small, tmp_path):
    c = client_for(small.settings, small.now)
    assert c.get("/api/portfolio").json()["available"]
    db = small.settings.database_path
    shutil.move(db, tmp_path / "old.db")
    for suffix in ("-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            shutil.move(f"{db}{suffix}", tmp_path / f"old.db{suffix}")
    assert c.get("/api/portfolio").json()["available"] is False
    KillSwitch(db).set(TradingState.HALTED, "fresh ledger", "operator", "2025-06-30T12:00:00-03:00")
    PaperBroker(db, tmp_path / "t.jsonl", 50_000.0)
    assert c.get("/api/kill-switch").json()["state"] == "HALTED"
    assert c.get("/api/portfolio").json()["cash"] == 50_000.0


def test_postgres_down_shows_why_and_refuses_the_controls_with_503(tmp_path):
    url = f"postgresql://b3:secret-pw@127.0.0.1:{closed_port()}/nowhere"
    settings = settings_for(tmp_path, url)
    c = client_for(settings, NOW)
    for path in ("/api/portfolio", "/api/trades", "/api/equity", "/api/kill-switch", "/api/health"):
        response = c.get(path)
        assert response.status_code == 200 and response.json()["available"] is False, path
        assert "cannot be reached" in response.json()["note"] and "secret-pw" not in response.text
    assert post(c, "halt").status_code == 503


def test_a_ledger_from_an_older_version_says_so(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE account (id INTEGER PRIMARY KEY, initial REAL, cash REAL);"
                           "INSERT INTO account VALUES (1, 100000, 100000);"
                           "CREATE TABLE positions (ticker TEXT, qty INTEGER);"
                           "CREATE TABLE loop_cycles (seq INTEGER, ts TEXT);"
                           "CREATE TABLE kill_switch (id INTEGER, state TEXT);")
    c = client_for(settings_for(tmp_path, db), NOW)
    for path in ("/api/portfolio", "/api/health"):
        body = c.get(path).json()
        assert body["available"] is False and "older version" in body["note"], path
    refused = post(c, "halt")
    assert refused.status_code == 409 and "older version" in refused.json()["detail"]


def test_a_pyramided_close_is_set_against_the_average_of_its_opens(tmp_path):
    db = tmp_path / "ledger.db"
    broker = PaperBroker(db, tmp_path / "t.jsonl", 100_000.0)
    rows = [("A:open", "2025-06-02", "open", 100, 10.0, None, "A"), ("B:open", "2025-06-03", "open", 100, 20.0, None, "B"),
            ("A:close", "2025-06-04", "close_take_profit", 200, 16.0, 190.0, "A"),
            ("C:open", "2025-06-05", "open", 100, 30.0, None, "C"), ("C:close", "2025-06-06", "close_stop", 100, 29.0, -110.0, "C")]
    with broker.db.write() as w:
        for seq, (tid, day, action, qty, price, profit, did) in enumerate(rows, start=1):
            w.execute("INSERT INTO trades VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (tid, f"{day}T17:00:00-03:00", day, action, "PETR4", qty, price, 1.0, profit, did, "simulation", seq))
    trades = {t["trade_id"]: t for t in client_for(settings_for(tmp_path, db), NOW).get("/api/trades").json()["trades"]}
    assert trades["A:close"]["entry_price"] == 15.0 and trades["A:close"]["entry_bar"] == "2025-06-02"
    assert trades["A:close"]["return"] == pytest.approx(190.0 / (15.0 * 200))
    assert trades["C:close"]["entry_price"] == 30.0  # the next round trip starts afresh


def test_drawdown_is_measured_from_the_curves_own_peak_across_a_resume(tmp_path):
    db = tmp_path / "ledger.db"
    switch = KillSwitch(db)
    PaperBroker(db, tmp_path / "t.jsonl", 100_000.0)
    limits = settings_for(tmp_path, db).kill_switch
    switch.mark(100_000.0, "2025-06-02", limits, "2025-06-02T18:00:00-03:00")
    switch.mark(84_000.0, "2025-06-03", limits, "2025-06-03T18:00:00-03:00")  # halts
    switch.set(TradingState.RUNNING, "resumed", "operator", "2025-06-04T10:00:00-03:00")  # restarts the peak
    switch.mark(80_000.0, "2025-06-04", limits, "2025-06-04T18:00:00-03:00")
    body = client_for(settings_for(tmp_path, db), NOW).get("/api/equity").json()
    assert body["points"][-1]["drawdown"] == pytest.approx(0.20) and body["max_drawdown"] == pytest.approx(0.20)


# ---------------------------------------------------------------- health

def test_a_failed_cycle_long_ago_is_stalled_and_a_sleeping_loop_says_so(tmp_path):
    db = tmp_path / "ledger.db"
    health = LoopHealth(open_database(db))
    base = dict(took_s=0.0, counts={}, interrupted=False, interval_s=300, provider="embedded", data_source="yfinance",
                last_bars={"PETR4": "2025-06-27"})
    health.record(ts=(NOW - timedelta(days=2)).isoformat(), cycle=7, error="OperationalError: disk full", **base)
    settings = settings_for(tmp_path, db)
    assert client_for(settings, NOW).get("/api/health").json()["status"] == "stalled"
    assert client_for(settings, NOW - timedelta(days=2) + timedelta(minutes=1)).get("/api/health").json()["status"] == "late"
    wake = NOW + timedelta(hours=14)
    health.record(ts=NOW.isoformat(), cycle=7, error=None, sleeping_until=wake.isoformat(), **base)
    body = client_for(settings, NOW + timedelta(hours=3)).get("/api/health").json()
    assert body["status"] == "sleeping" and wake.isoformat() in body["status_reason"]
    assert body["last_cycle"]["cycle"] == 7 and all(c["sleeping_until"] is None for c in body["cycles"])
    assert client_for(settings, wake + timedelta(hours=1)).get("/api/health").json()["status"] == "stalled"


# ---------------------------------------------------------------- backtest reports

def test_odd_backtest_folders_never_break_the_list(tmp_path):
    reports = tmp_path / "reports"
    (reports / "nested").mkdir(parents=True)
    (reports / "nested" / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    (reports / "strings").mkdir()
    (reports / "strings" / "metrics.json").write_text(json.dumps({"meta": {"tickers": "PETR4"}, "metrics": {}}))
    (reports / "good").mkdir()
    (reports / "good" / "metrics.json").write_text(json.dumps(
        {"meta": {"mode": "quant", "tickers": ["PETR4"]}, "metrics": {"total_return": 0.1}, "baselines": {}}))
    (reports / "good" / "report.html").write_text("<html><body><script>alert(1)</script>report</body></html>")
    os.mkdir(bytes(reports) + b"/bad-\xff-name")
    (Path(os.fsdecode(bytes(reports) + b"/bad-\xff-name")) / "metrics.json").write_text("{}")
    c = client_for(settings_for(tmp_path, tmp_path / "ledger.db"), NOW)
    body = c.get("/api/backtests").json()
    by_name = {r["name"]: r for r in body["reports"]}
    assert set(by_name) == {"nested", "strings", "good"}
    assert by_name["good"]["metrics"]["total_return"] == 0.1
    assert by_name["nested"]["metrics"] is None and "unreadable" in by_name["nested"]["note"]
    assert by_name["strings"]["metrics"] is None
    page = c.get("/reports/good/report.html")
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("sandbox")
