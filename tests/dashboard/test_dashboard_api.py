"""The dashboard's JSON API over a store populated by the real loop parts (tests/dashboard_store.py):
every view against the records and the ledger it reads, bad parameters, the kill-switch control
and who may use it, a store the loop has not created yet, and Postgres."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from agent.backtest.report import write_report
from agent.config import LAYER_NAMES
from agent.dashboard.app import create_app
from agent.store.jsonl import DecisionSink, append_jsonl
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.conftest import DAILY_DIR, require_shared_data
from tests.support.dashboard_store import TICKERS, populate, settings_for


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    require_shared_data()
    tmp = tmp_path_factory.mktemp("dashboard")
    return populate(tmp, tmp / "ledger.db")


LOCAL = "http://127.0.0.1:8050"  # on loopback the app answers loopback host names only


@pytest.fixture
def client(populated):
    return client_for(populated.settings, populated.now)


def client_for(settings, now, **kw) -> TestClient:
    return TestClient(create_app(settings, clock=lambda: now, **kw), base_url=LOCAL)


# ---------------------------------------------------------------- decisions

def test_latest_decision_per_ticker_is_the_newest_record_of_each(client, populated):
    body = client.get("/api/decisions/latest").json()
    newest = {r["ticker"]: r for r in populated.records}
    assert {d["ticker"] for d in body["decisions"]} == set(TICKERS)
    for shown in body["decisions"]:
        record = newest[shown["ticker"]]
        assert (shown["decision_id"], shown["ts"], shown["decision"], shown["confidence"], shown["discarded_at"]) == \
            (record["decision_id"], record["ts"], record["decision"], record["confidence"], record["discarded_at"])
    assert {d["ticker"]: d["discarded_at"] for d in body["decisions"]}["VALE3"] == "technical"
    assert body["skipped_lines"] == 0


def test_a_decision_in_full_with_its_layers_snapshots_and_paper_order(client, populated):
    buy = next(r for r in populated.records if r["decision"] == "BUY")
    body = client.get(f"/api/decisions/{buy['decision_id']}").json()
    assert body["record"] == buy  # the whole record, as written
    assert [r["layer"] for r in body["record"]["layers"]] == list(LAYER_NAMES)
    assert all(r["model"] and r["reason"] and r["latency_ms"] >= 0 for r in body["record"]["layers"])
    assert body["record"]["indicators"]["rsi"] > 0 and body["record"]["risk"]["stop"] < body["record"]["risk"]["entry"]
    assert body["order_status"] == "filled" and body["occurrences"] == 1
    hold = next(r for r in populated.records if r["ticker"] == "ITUB4")
    assert client.get(f"/api/decisions/{hold['decision_id']}").json()["order_status"] is None


def test_a_decision_recorded_twice_is_found_by_time_and_counted(tmp_path):
    require_shared_data()
    p = populate(tmp_path, tmp_path / "ledger.db", sessions=3)
    again = {**p.records[-1], "ts": (datetime.fromisoformat(p.records[-1]["ts"]) + timedelta(minutes=5)).isoformat()}
    DecisionSink(p.settings.logging.dir).write(again)
    c = client_for(p.settings, p.now)
    body = c.get(f"/api/decisions/{again['decision_id']}").json()
    assert body["occurrences"] == 2 and body["record"]["ts"] == again["ts"]
    first = c.get(f"/api/decisions/{again['decision_id']}", params={"ts": p.records[-1]["ts"]}).json()
    assert first["record"]["ts"] == p.records[-1]["ts"]
    # the funnel counts the decision once by default, every record when asked
    unique = c.get("/api/funnel", params={"since": "2025-01-01"}).json()
    every = c.get("/api/funnel", params={"since": "2025-01-01", "unique": "false"}).json()
    assert unique["decisions"] == len(p.records) and every["decisions"] == len(p.records) + 1


@pytest.mark.parametrize("path, status, words", [
    ("/api/decisions/PETR4-2025-06-27-000000000000", 404, "no decision"),
    ("/api/decisions/not-an-id", 422, "pattern"),
    ("/api/decisions/PETR4-2025-06-27-000000000000?ts=2025-06-27T17:30:00", 400, "time zone"),
    ("/api/decisions?since=yesterday", 422, "date"),
    ("/api/decisions?since=2025-06-20&until=2025-06-01", 400, "after"),
    ("/api/decisions?limit=0", 422, "greater than or equal"),
    ("/api/decisions?limit=abc", 422, "integer"),
    ("/api/decisions?ticker=%3Cscript%3E", 422, "pattern"),
    ("/api/decisions?decision=SELL", 422, "pattern"),
    ("/api/funnel?since=2025-06-20&until=2025-06-01", 400, "after"),
    ("/api/funnel?unique=maybe", 422, "boolean"),
    ("/api/health?cycles=0", 422, "greater than or equal"),
    ("/api/decisions?tikcer=PETR4", 400, "unknown query parameter(s) tikcer"),
    ("/api/portfolio?since=2025-01-01", 400, "takes none"),
    ("/api/trades?limit=999999", 422, "less than or equal"),
])
def test_bad_parameters_get_a_4xx_with_a_message(client, path, status, words):
    response = client.get(path)
    assert response.status_code == status
    assert words in json.dumps(response.json()["detail"])


def test_the_list_filters_by_ticker_outcome_and_date(client, populated):
    vale = client.get("/api/decisions", params={"ticker": "vale3", "limit": 1000}).json()
    assert vale["total"] == sum(r["ticker"] == "VALE3" for r in populated.records)
    assert {d["ticker"] for d in vale["decisions"]} == {"VALE3"}
    buys = client.get("/api/decisions", params={"decision": "BUY"}).json()
    assert buys["total"] == sum(r["decision"] == "BUY" for r in populated.records) > 0
    day = populated.days[-1].isoformat()
    one_day = client.get("/api/decisions", params={"since": day, "until": day}).json()
    assert one_day["total"] == len(TICKERS)
    page = client.get("/api/decisions", params={"limit": 2, "offset": 1}).json()
    assert [d["ts"] for d in page["decisions"]] == sorted((r["ts"] for r in populated.records), reverse=True)[1:3]


def test_the_funnel_counts_what_the_records_say(client, populated):
    body = client.get("/api/funnel", params={"since": populated.days[0].isoformat()}).json()
    records = populated.records
    assert body["decisions"] == len(records)
    assert body["buy"] == sum(r["decision"] == "BUY" for r in records)
    for stage in body["layers"]:
        reached = [r for r in records if any(x["layer"] == stage["stage"] for x in r["layers"])]
        passed = [r for r in reached if any(x["layer"] == stage["stage"] and x["passed"] for x in r["layers"])]
        assert (stage["reached"], stage["passed"], stage["discarded"]) == (len(reached), len(passed),
                                                                          len(reached) - len(passed))
    # by construction: ITUB4 stops at sentiment, VALE3 at technical, PETR4 goes through
    assert body["layers"][0]["discarded"] == len(populated.days)
    assert body["layers"][1]["discarded"] == len(populated.days)
    assert body["blocked_after_layers"]["portfolio"] == sum(r["discarded_at"] == "portfolio" for r in records)
    assert sum(sum(day.values()) for day in body["by_day"].values()) == len(records)
    assert client.get("/api/funnel", params={"ticker": "ITUB4", "since": "2025-01-01"}).json()["layers"][1]["reached"] == 0


def test_the_funnel_defaults_to_the_last_seven_days(client, populated):
    body = client.get("/api/funnel").json()
    until = populated.now.date()
    assert body["until"] == until.isoformat() and body["since"] == (until - timedelta(days=6)).isoformat()
    early = client.get("/api/funnel", params={"until": "0001-01-03"})  # no date before year 1 to start from
    assert early.status_code == 200 and early.json()["since"] == "0001-01-01"


# ---------------------------------------------------------------- portfolio

def test_portfolio_and_trades_are_the_ledgers(client, populated):
    p = client.get("/api/portfolio").json()
    ledger = KillSwitch(populated.settings.store)  # noqa: F841 - the same store the loop writes
    from agent.trading.broker import PaperBroker

    broker = PaperBroker(populated.settings.store, populated.settings.logging.dir / "trades.jsonl", 100_000.0)
    positions = broker.positions()
    assert p["available"] and p["cash"] == pytest.approx(broker.cash)
    assert {x["ticker"]: x["qty"] for x in p["positions"]} == {t: v["qty"] for t, v in positions.items()}
    for x in p["positions"]:
        mark = positions[x["ticker"]]["last_close"]
        assert x["unrealised_pnl"] == pytest.approx((mark - x["entry"]) * x["qty"] - x["open_fees"], abs=0.01)
    assert p["equity"] == pytest.approx(broker.equity({}), abs=0.01)
    t = client.get("/api/trades").json()
    closes = [x for x in populated.trades if x["profit"] is not None]
    assert t["total"] == len(populated.trades) and t["closed"] == len(closes) > 0
    assert t["realised_pnl"] == pytest.approx(sum(x["profit"] for x in closes), abs=0.01)
    assert [x["trade_id"] for x in t["trades"]] == [x["trade_id"] for x in populated.trades][::-1]
    close = next(x for x in t["trades"] if x["profit"] is not None)
    opened = next(x for x in populated.trades if x["trade_id"] == close["decision_id"] + ":open")
    assert close["entry_price"] == opened["price"]
    assert close["return"] == pytest.approx(close["profit"] / (opened["price"] * close["qty"]))


def test_the_equity_curve_is_marked_each_day_and_set_against_the_real_ibovespa(client, populated):
    body = client.get("/api/equity").json()
    assert [x["day"] for x in body["points"]] == [d.isoformat() for d in populated.days]
    assert all(x["equity"] <= x["peak"] + 1e-9 for x in body["points"])
    assert body["max_drawdown"] == pytest.approx(max((x["peak"] - x["equity"]) / x["peak"] for x in body["points"]))
    raw = pd.read_csv(DAILY_DIR / "BVSP.csv", skiprows=[1, 2], index_col=0, parse_dates=True)["Close"]
    raw = raw[raw.index >= pd.Timestamp(populated.days[0])]
    bench = {x["day"]: x["value"] for x in body["benchmark"]}
    first = body["points"][0]["equity"]
    assert bench[populated.days[0].isoformat()] == pytest.approx(first, abs=0.01)
    last_day = populated.days[-1].isoformat()
    assert bench[last_day] == pytest.approx(first * raw.loc[last_day] / raw.iloc[0], abs=0.01)
    assert body["benchmark_source"] == "csv" and body["benchmark_note"] is None


def test_an_unavailable_ibovespa_leaves_the_curve_with_a_note(populated):
    class Down:
        name = "yfinance"

        def get_bars(self, *a, **kw):
            raise ConnectionError("Yahoo unreachable")

    body = client_for(populated.settings, populated.now, market=Down()).get("/api/equity").json()
    assert body["available"] and len(body["points"]) == len(populated.days)
    assert body["benchmark"] == [] and "Yahoo unreachable" in body["benchmark_note"]


# ---------------------------------------------------------------- health

def test_health_reports_the_last_cycle_and_goes_stalled_when_cycles_stop(client, populated):
    errors = populated.settings.logging.dir / "errors.log"
    errors.write_text("".join(f"2025-06-27 ERROR line {i}\n" for i in range(40)))
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["last_cycle"]["cycle"] == len(populated.days)
    assert body["age_s"] == pytest.approx(60.0)
    assert {s["ticker"]: s["age_days"] for s in body["staleness"]} == {t: 0 for t in TICKERS}
    assert body["errors_log"][-1] == "2025-06-27 ERROR line 39" and len(body["errors_log"]) == 30
    later = client_for(populated.settings, populated.now + timedelta(hours=2)).get("/api/health").json()
    assert later["status"] == "stalled" and "nothing from the loop for" in later["status_reason"]
    late = client_for(populated.settings, populated.now + timedelta(minutes=9)).get("/api/health").json()
    assert late["status"] == "late"


# ---------------------------------------------------------------- the kill switch

def post(c: TestClient, action: str, **headers: str):
    return c.post("/api/kill-switch", json={"action": action, "reason": "test"}, headers=headers)


def test_halt_and_resume_on_loopback_change_the_persisted_switch(tmp_path):
    require_shared_data()
    p = populate(tmp_path, tmp_path / "ledger.db", sessions=2)
    c = client_for(p.settings, p.now)
    assert post(c, "halt").json() == {"changed": True, "state": "HALTED"}
    assert KillSwitch(p.settings.store).state == TradingState.HALTED
    shown = c.get("/api/kill-switch").json()
    assert shown["state"] == "HALTED" and shown["changed_by"] == "dashboard" and shown["log"][0]["reason"] == "test"
    assert post(c, "halt").json() == {"changed": False, "state": "HALTED"}
    assert post(c, "resume").json()["state"] == "RUNNING"
    assert KillSwitch(p.settings.store).state == TradingState.RUNNING
    assert post(c, "no_new_buys").json()["state"] == "NO_NEW_BUYS"


def test_the_controls_refuse_forms_foreign_origins_and_unknown_actions(client, populated):
    for kind in ("text/plain", "application/x-www-form-urlencoded"):  # what a cross-site form can send
        form = client.post("/api/kill-switch", content='{"action": "halt"}', headers={"Content-Type": kind})
        assert form.status_code == 422, kind
    assert post(client, "halt", Origin="https://evil.example").status_code == 403
    assert client.post("/api/kill-switch", json={"action": "buy_everything"}).status_code == 422
    assert KillSwitch(populated.settings.store).state == TradingState.RUNNING


def test_a_token_is_required_once_set_and_beyond_loopback(tmp_path):
    require_shared_data()
    p = populate(tmp_path, tmp_path / "ledger.db", sessions=2)
    token = "dash-secret-token-42"
    with_token = settings_for(tmp_path, tmp_path / "ledger.db", **{"secrets.dashboard_token": token})
    c = client_for(with_token, p.now)
    assert post(c, "halt").status_code == 401
    assert post(c, "halt", Authorization="Bearer wrong").status_code == 401
    assert post(c, "halt", Authorization=f"Bearer {token}").json()["state"] == "HALTED"
    for path in ("/api/status", "/api/kill-switch", "/openapi.json"):
        assert token not in c.get(path).text

    lan = settings_for(tmp_path, tmp_path / "ledger.db", **{"dashboard.bind": "0.0.0.0"})
    c = client_for(lan, p.now)
    control = c.get("/api/kill-switch").json()["control"]
    assert control["enabled"] is False and "DASHBOARD_TOKEN" in control["why"]
    refused = post(c, "resume")
    assert refused.status_code == 403 and "DASHBOARD_TOKEN" in refused.json()["detail"]
    assert KillSwitch(p.settings.store).state == TradingState.HALTED

    lan_token = settings_for(tmp_path, tmp_path / "ledger.db", **{"dashboard.bind": "0.0.0.0",
                                                                 "secrets.dashboard_token": token})
    c = client_for(lan_token, p.now)
    assert post(c, "resume").status_code == 401
    assert post(c, "resume", Authorization=f"Bearer {token}").json()["state"] == "RUNNING"


# ---------------------------------------------------------------- before the loop ever ran

def test_a_store_the_loop_has_not_made_yet_is_reported_not_created(tmp_path):
    settings = settings_for(tmp_path, tmp_path / "data" / "agent.db")
    c = client_for(settings, datetime(2025, 6, 30, 12, 0).astimezone())
    assert c.get("/api/decisions/latest").json()["decisions"] == []
    for path in ("/api/portfolio", "/api/trades", "/api/equity", "/api/kill-switch", "/api/health"):
        body = c.get(path).json()
        assert body["available"] is False and "make run" in body["note"], path
    assert c.get("/api/health").json()["status"] == "unknown"
    assert post(c, "halt").status_code == 409
    assert not (tmp_path / "data" / "agent.db").exists()
    assert c.get("/api/backtests").json()["reports"] == []


def test_a_torn_last_line_is_read_once_it_is_complete(tmp_path):
    require_shared_data()
    p = populate(tmp_path, tmp_path / "ledger.db", sessions=2)
    c = client_for(p.settings, p.now)
    before = c.get("/api/decisions").json()["total"]
    path = DecisionSink(p.settings.logging.dir).path_for(datetime.fromisoformat(p.records[-1]["ts"]))
    extra = {**p.records[-1], "ts": (datetime.fromisoformat(p.records[-1]["ts"]) + timedelta(seconds=1)).isoformat()}
    line = json.dumps(extra)
    with open(path, "a") as fh:
        fh.write(line[:40])  # a writer mid-line
    assert c.get("/api/decisions").json()["total"] == before
    with open(path, "a") as fh:
        fh.write(line[40:] + "\n")
    assert c.get("/api/decisions").json()["total"] == before + 1
    append_jsonl(path, {"not": "a record"})
    body = c.get("/api/decisions/latest").json()
    assert body["skipped_lines"] == 1 and len(body["decisions"]) == len(TICKERS)


# ---------------------------------------------------------------- backtest reports

def test_backtest_reports_are_listed_and_served(tmp_path):
    settings = settings_for(tmp_path, tmp_path / "ledger.db")
    days = pd.bdate_range("2024-01-02", periods=30)
    equity = pd.Series([100_000 + 100 * i for i in range(30)], index=days, dtype=float)
    write_report(tmp_path / "reports" / "petr4-2024", title="PETR4", equity=equity, baseline_equity={},
                 metrics={"total_return": 0.029, "max_drawdown": 0.0, "trades": 0},
                 baselines={"buy_and_hold:PETR4": {"total_return": 0.1}}, trades=[], prices={},
                 meta={"mode": "quant", "tickers": ["PETR4"], "start": "2024-01-02", "end": "2024-02-09"})
    (tmp_path / "reports" / "empty-folder").mkdir()
    c = client_for(settings, datetime(2025, 6, 30, 12, 0).astimezone())
    body = c.get("/api/backtests").json()
    assert [r["name"] for r in body["reports"]] == ["petr4-2024"]
    report = body["reports"][0]
    assert report["metrics"]["total_return"] == 0.029 and report["metrics"]["baselines"] == {"buy_and_hold:PETR4": 0.1}
    page = c.get(report["html"])
    assert page.status_code == 200 and "PETR4" in page.text
    assert c.get("/reports/../config.yaml").status_code == 404
    assert c.get("/reports/%2e%2e/config.yaml").status_code == 404


# ---------------------------------------------------------------- the pages

def test_pages_plotly_and_security_headers_are_served_locally(client):
    for path in ("/", "/funnel", "/portfolio", "/health", "/backtests", "/decision/PETR4-2025-06-27-abc"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    bundle = client.get("/vendor/plotly.min.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
    assert client.get("/api/status").headers["cache-control"] == "no-store"


# ---------------------------------------------------------------- Postgres

def test_the_dashboard_reads_a_postgres_ledger(tmp_path, stores):
    require_shared_data()
    store = stores.new()
    p = populate(tmp_path, store, sessions=6)
    c = client_for(p.settings, p.now)
    assert c.get("/api/portfolio").json()["available"]
    assert c.get("/api/trades").json()["total"] == len(p.trades)
    assert len(c.get("/api/equity").json()["points"]) == len(p.days)
    assert c.get("/api/health").json()["last_cycle"]["cycle"] == len(p.days)
    assert post(c, "halt").json()["state"] == "HALTED"
    assert KillSwitch(store).state == TradingState.HALTED
