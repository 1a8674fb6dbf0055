"""Paper broker: fills, costs, exits, idempotency per decision, restart reconciliation, accounting."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.store.jsonl import read_jsonl
from agent.trading.broker import Bar, Costs, PaperBroker, bars_from_frame

COSTS = Costs(slippage_bps=10.0, fee_bps=3.25, commission=2.0)
DECIDED, NEXT, LATER = "2025-06-30", "2025-07-01", "2025-07-02"


def buy(decision_id: str, ticker="PETR4", shares=100, stop=9.0, target=12.0, bar_date=DECIDED) -> dict:
    return {"decision_id": decision_id, "ticker": ticker, "decision": "BUY", "bar_date": bar_date,
            "position": {"shares": shares, "entry": 10.0, "stop": stop, "take_profit": target, "size_factor": 1.0}}


def flat(day: str, price: float) -> Bar:
    return Bar(day, price, price, price, price)


def make(stores, capital=100_000.0, name="ledger", **kw) -> PaperBroker:
    """A broker on the store ``name`` (SQLite or Postgres); making it again is a restart."""
    return PaperBroker(stores.new(name), stores.tmp_path / f"{name}.jsonl", capital, COSTS, **kw)


def open_at(broker: PaperBroker, record: dict, price: float, day: str = NEXT) -> dict | None:
    """Submit the BUY and feed the next bar (flat at ``price``). The open trade, or None."""
    broker.submit(record, "t0")
    trades = broker.process_bars(record["ticker"], [flat(day, price)], "t1")
    return next((t for t in trades if t["action"] == "open"), None)


def test_buy_fills_at_the_next_bars_open_plus_slippage_with_b3_costs(stores):
    broker = make(stores)
    assert broker.submit(buy("d1"), "t0")["status"] == "pending"
    assert broker.process_bars("PETR4", [flat(DECIDED, 9.0)], "t1") == []  # the decision's own bar never fills it
    [trade] = broker.process_bars("PETR4", [flat(DECIDED, 9.0), Bar(NEXT, 10.0, 10.2, 9.9, 10.1)], "t2")
    assert trade["price"] == pytest.approx(10.01) and trade["bar_date"] == NEXT
    assert trade["fees"] == pytest.approx(round(100 * 10.01 * 3.25 / 10_000 + 2.0, 2))
    assert broker.cash == pytest.approx(100_000 - 1001.0 - trade["fees"])
    assert broker.orders("filled")[0]["decision_id"] == "d1" and broker.orders("pending") == []
    logged = list(read_jsonl(stores.tmp_path / "ledger.jsonl"))
    assert logged == [trade]
    assert set(trade) >= {"action", "ticker", "qty", "price", "fees", "profit", "decision_id", "mode"}


def test_the_same_decision_never_fills_twice_even_after_restart(stores):
    open_at(make(stores), buy("d1"), 10.0)
    again = make(stores)  # a restart: new process, same ledger
    assert again.submit(buy("d1"), "t5") is None
    assert again.process_bars("PETR4", [flat(NEXT, 10.0), flat(LATER, 10.0)], "t6") == []
    assert len(again.trades()) == 1 and len(list(read_jsonl(stores.tmp_path / "ledger.jsonl"))) == 1


def test_a_buy_while_open_does_not_double_unless_pyramiding(stores):
    broker = make(stores)
    open_at(broker, buy("d1"), 10.0)
    assert open_at(broker, buy("d2", bar_date=NEXT), 10.5, day=LATER) is None
    assert broker.positions()["PETR4"]["qty"] == 100
    assert broker.orders("rejected")[0]["reason"].startswith("a position is already open")
    pyramid = make(stores, name="p", allow_pyramiding=True)
    open_at(pyramid, buy("d1"), 10.0)
    open_at(pyramid, buy("d2", bar_date=NEXT), 10.5, day=LATER)
    assert pyramid.positions()["PETR4"]["qty"] == 200


def test_hold_and_unaffordable_buys_do_nothing(stores):
    broker = make(stores, capital=500.0)
    assert broker.submit({**buy("d0"), "decision": "HOLD"}, "t") is None
    assert open_at(broker, buy("d1"), 10.0) is None  # 100 shares cost more than 500
    assert broker.cash == 500.0 and broker.trades() == []
    assert "cash is 500.00" in broker.orders("rejected")[0]["reason"]


def test_cancelled_orders_never_fill(stores):
    broker = make(stores)
    broker.submit(buy("d1"), "t0")
    assert broker.cancel_pending("kill switch HALTED", "t1") == 1
    assert broker.process_bars("PETR4", [flat(NEXT, 10.0)], "t2") == []
    assert broker.orders("cancelled")[0]["reason"] == "kill switch HALTED"


@pytest.mark.parametrize(("bar", "action", "raw_price"), [
    (Bar(LATER, 9.5, 9.8, 8.5, 8.7), "close_stop", 9.0),
    (Bar(LATER, 8.0, 8.2, 7.5, 7.9), "close_stop", 8.0),  # gap through the stop
    (Bar(LATER, 11.0, 12.5, 10.9, 12.2), "close_take_profit", 12.0),
    (Bar(LATER, 10.0, 12.5, 8.5, 10.0), "close_stop", 9.0),  # both touched: stop first
])
def test_rule_based_exits(stores, bar, action, raw_price):
    broker = make(stores)
    opened = open_at(broker, buy("d1"), 10.0)
    [closed] = broker.process_bars("PETR4", [flat(NEXT, 10.0), bar], "t2")
    assert closed["action"] == action and closed["bar_date"] == LATER
    assert closed["price"] == pytest.approx(raw_price * (1 - 10 / 10_000))
    assert closed["profit"] == pytest.approx((closed["price"] - opened["price"]) * 100 - closed["fees"] - opened["fees"],
                                             abs=0.01)
    assert broker.positions() == {}
    assert broker.process_bars("PETR4", [bar], "t3") == []


def test_the_fill_bar_itself_can_stop_the_position_out(stores):
    broker = make(stores)
    broker.submit(buy("d1"), "t0")
    opened, closed = broker.process_bars("PETR4", [Bar(NEXT, 10.0, 10.1, 8.8, 8.9)], "t1")
    assert (opened["action"], closed["action"]) == ("open", "close_stop")


def test_no_exit_inside_the_range_and_checked_bars_are_not_rechecked(stores):
    broker = make(stores)
    open_at(broker, buy("d1"), 10.0)
    assert broker.process_bars("PETR4", [Bar(LATER, 10, 11, 9.5, 10.5)], "t2") == []
    assert broker.positions()["PETR4"]["checked_through"] == LATER


def test_bars_from_a_validated_frame(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"open": [1.0, 2.0], "high": [1.5, 2.5], "low": [0.5, 1.5], "close": [1.2, 2.2],
                          "volume": [10, 20]}, index=pd.to_datetime(["2025-07-01", "2025-07-02"]))
    assert bars_from_frame(frame) == [Bar("2025-07-01", 1.0, 1.5, 0.5, 1.2), Bar("2025-07-02", 2.0, 2.5, 1.5, 2.2)]


def test_restart_after_a_crash_between_ledger_and_log_reconciles_without_duplicates(stores):
    broker = make(stores)
    open_at(broker, buy("d1"), 10.0)
    open_at(broker, buy("d2", ticker="VALE3", stop=45.0, target=60.0), 50.0)
    log = stores.tmp_path / "ledger.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][:25])  # the process died mid-write of the second line
    restarted = make(stores)
    trades = [t["trade_id"] for t in read_jsonl(log)]
    assert trades == ["d1:open", "d2:open"]
    assert make(stores).reconcile() == 0  # idempotent
    assert restarted.positions().keys() == {"PETR4", "VALE3"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["PETR4", "VALE3", "ITUB4"]), st.integers(1, 30),
                          st.floats(1.0, 200.0), st.floats(-0.3, 0.3)), min_size=1, max_size=25))
def test_accounting_identity_and_no_negative_cash(tmp_path_factory, steps):
    """cash + cost of open positions (with their fees) == initial capital + realised profit; cash >= 0."""
    path = tmp_path_factory.mktemp("acct")
    broker = PaperBroker(path / "ledger.db", path / "trades.jsonl", 50_000.0, COSTS)
    for i, (ticker, lots, price, move) in enumerate(steps):
        day = f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}"
        broker.submit(buy(f"d{i}", ticker, lots * 100, stop=price * 0.9, target=price * 1.1, bar_date=day), f"t{i}")
        moved = price * (1 + move)
        nxt = f"{day}T1"  # sorts after ``day`` and before the next day: this step's fill bar
        broker.process_bars(ticker, [Bar(nxt, price, max(moved, price), min(moved, price), moved)], f"t{i}b")
        assert broker.cash >= 0
    held = sum(p["qty"] * p["entry"] + p["open_fees"] for p in broker.positions().values())
    realised = sum(t["profit"] for t in broker.trades() if t["profit"] is not None)
    assert broker.cash + held == pytest.approx(50_000.0 + realised, abs=0.05 * (1 + len(steps)))
    log = path / "trades.jsonl"
    logged = list(read_jsonl(log)) if log.exists() else []
    assert [json.dumps(t, sort_keys=True) for t in logged] == [json.dumps(t, sort_keys=True) for t in broker.trades()]


def test_a_ledger_made_by_an_older_version_is_refused_with_a_clear_error(tmp_path):
    import sqlite3

    from agent.errors import ConfigError

    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("CREATE TABLE orders (decision_id TEXT PRIMARY KEY, ticker TEXT)")  # no seq, no status...
    old.commit()
    old.close()
    with pytest.raises(ConfigError, match="table orders was made by an older version and lacks .*seq"):
        PaperBroker(tmp_path / "old.db", tmp_path / "t.jsonl", 1000.0)


def test_a_live_ledger_syncs_every_commit_and_a_backtests_scratch_ledger_does_not(tmp_path):
    from agent.store.db import Database

    live, scratch = Database(tmp_path / "live.db"), Database(tmp_path / "backtest.db", scratch=True)
    assert live.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a commit survives a power cut
    assert scratch.execute("PRAGMA synchronous").fetchone()[0] == 0  # OFF: the file is deleted after the run
    broker = PaperBroker(scratch, tmp_path / "trades.jsonl", 10_000.0, COSTS)
    assert broker.db is scratch and broker.cash == 10_000.0


def test_a_second_agent_on_the_same_ledger_cannot_pass_max_open_positions(stores):
    """Two processes share one ledger; each trader's guard looked before the other queued. The order's own
    transaction counts again, so the limit and "one pending order per ticker" still hold."""
    first, second = make(stores), make(stores)  # two connections, as two processes would have
    assert first.submit(buy("A-1", "PETR4"), "t", max_open=1) is not None
    assert second.submit(buy("B-1", "VALE3"), "t", max_open=1) is None  # 1 pending already: the limit
    assert second.submit(buy("B-2", "PETR4"), "t", max_open=5) is None  # PETR4 already has a pending order
    assert second.submit(buy("B-3", "VALE3"), "t", max_open=2) is not None
    assert sorted(o["decision_id"] for o in first.orders("pending")) == ["A-1", "B-3"]
