"""Paper broker: fills, costs, exits, idempotency per decision, restart reconciliation, accounting."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.broker import Costs, PaperBroker
from agent.sink import read_jsonl

COSTS = Costs(slippage_bps=10.0, fee_bps=3.25, commission=2.0)


def buy(decision_id: str, ticker="PETR4", shares=100, stop=9.0, target=12.0) -> dict:
    return {"decision_id": decision_id, "ticker": ticker, "decision": "BUY",
            "position": {"shares": shares, "entry": 10.0, "stop": stop, "take_profit": target, "size_factor": 1.0}}


def make(tmp_path, capital=100_000.0, **kw) -> PaperBroker:
    return PaperBroker(tmp_path / "ledger.db", tmp_path / "trades.jsonl", capital, COSTS, **kw)


def test_buy_fills_at_next_open_plus_slippage_with_b3_costs(tmp_path):
    broker = make(tmp_path)
    trade = broker.open_from_decision(buy("d1"), next_open=10.0, ts="2025-07-01T10:00:00-03:00")
    assert trade["price"] == pytest.approx(10.01)
    assert trade["fees"] == pytest.approx(round(100 * 10.01 * 3.25 / 10_000 + 2.0, 2))
    assert broker.cash == pytest.approx(100_000 - 1001.0 - trade["fees"])
    logged = list(read_jsonl(tmp_path / "trades.jsonl"))
    assert logged == [trade]
    assert set(trade) >= {"action", "ticker", "qty", "price", "fees", "profit", "decision_id", "mode"}


def test_the_same_decision_never_fills_twice_even_after_restart(tmp_path):
    make(tmp_path).open_from_decision(buy("d1"), 10.0, "t1")
    again = make(tmp_path)  # a restart: new process, same ledger
    assert again.open_from_decision(buy("d1"), 10.0, "t1") is None
    assert len(again.trades()) == 1 and len(list(read_jsonl(tmp_path / "trades.jsonl"))) == 1


def test_a_buy_while_open_does_not_double_unless_pyramiding(tmp_path):
    broker = make(tmp_path)
    broker.open_from_decision(buy("d1"), 10.0, "t1")
    assert broker.open_from_decision(buy("d2"), 10.5, "t2") is None
    assert broker.positions()["PETR4"]["qty"] == 100
    pyramid = make(tmp_path / "p", allow_pyramiding=True)
    pyramid.open_from_decision(buy("d1"), 10.0, "t1")
    pyramid.open_from_decision(buy("d2"), 10.5, "t2")
    assert pyramid.positions()["PETR4"]["qty"] == 200


def test_hold_and_unaffordable_buys_do_nothing(tmp_path):
    broker = make(tmp_path, capital=500.0)
    assert broker.open_from_decision({**buy("d0"), "decision": "HOLD"}, 10.0, "t") is None
    assert broker.open_from_decision(buy("d1"), 10.0, "t") is None  # 100 shares cost more than 500
    assert broker.cash == 500.0 and broker.trades() == []


@pytest.mark.parametrize(("bar", "action", "raw_price"), [
    ({"open": 9.5, "high": 9.8, "low": 8.5, "close": 8.7}, "close_stop", 9.0),
    ({"open": 8.0, "high": 8.2, "low": 7.5, "close": 7.9}, "close_stop", 8.0),  # gap through the stop
    ({"open": 11.0, "high": 12.5, "low": 10.9, "close": 12.2}, "close_take_profit", 12.0),
    ({"open": 10.0, "high": 12.5, "low": 8.5, "close": 10.0}, "close_stop", 9.0),  # both touched: stop first
])
def test_rule_based_exits(tmp_path, bar, action, raw_price):
    broker = make(tmp_path)
    opened = broker.open_from_decision(buy("d1"), 10.0, "t1")
    closed = broker.check_exits("PETR4", bar, "t2")
    assert closed["action"] == action
    assert closed["price"] == pytest.approx(raw_price * (1 - 10 / 10_000))
    assert closed["profit"] == pytest.approx((closed["price"] - opened["price"]) * 100 - closed["fees"] - opened["fees"],
                                             abs=0.01)
    assert broker.positions() == {}
    assert broker.check_exits("PETR4", bar, "t3") is None


def test_no_exit_inside_the_range(tmp_path):
    broker = make(tmp_path)
    broker.open_from_decision(buy("d1"), 10.0, "t1")
    assert broker.check_exits("PETR4", {"open": 10, "high": 11, "low": 9.5, "close": 10.5}, "t2") is None


def test_restart_after_a_crash_between_ledger_and_log_reconciles_without_duplicates(tmp_path):
    broker = make(tmp_path)
    broker.open_from_decision(buy("d1"), 10.0, "t1")
    broker.open_from_decision(buy("d2", ticker="VALE3"), 50.0, "t2")
    log = tmp_path / "trades.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][:25])  # the process died mid-write of the second line
    restarted = make(tmp_path)
    trades = [t["trade_id"] for t in read_jsonl(log)]
    assert trades == ["d1:open", "d2:open"]
    assert make(tmp_path).reconcile() == 0  # idempotent
    assert restarted.positions().keys() == {"PETR4", "VALE3"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["PETR4", "VALE3", "ITUB4"]), st.integers(1, 30),
                          st.floats(1.0, 200.0), st.floats(-0.3, 0.3)), min_size=1, max_size=25))
def test_accounting_identity_and_no_negative_cash(tmp_path_factory, steps):
    """cash + cost of open positions (with their fees) == initial capital + realised profit; cash >= 0."""
    path = tmp_path_factory.mktemp("acct")
    broker = make(path, capital=50_000.0)
    for i, (ticker, lots, price, move) in enumerate(steps):
        broker.open_from_decision(buy(f"d{i}", ticker, lots * 100, stop=price * 0.9, target=price * 1.1), price, f"t{i}")
        moved = price * (1 + move)
        broker.check_exits(ticker, {"open": moved, "high": max(moved, price), "low": min(moved, price),
                                    "close": moved}, f"t{i}b")
        assert broker.cash >= 0
    held = sum(p["qty"] * p["entry"] + p["open_fees"] for p in broker.positions().values())
    realised = sum(t["profit"] for t in broker.trades() if t["profit"] is not None)
    assert broker.cash + held == pytest.approx(50_000.0 + realised, abs=0.05 * (1 + len(steps)))
    log = path / "trades.jsonl"
    logged = list(read_jsonl(log)) if log.exists() else []
    assert [json.dumps(t, sort_keys=True) for t in logged] == [json.dumps(t, sort_keys=True) for t in broker.trades()]
