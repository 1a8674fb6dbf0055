"""IBOV in B3_TICKERS (the original guide lists it): the index is analysed and recorded with its own records,
and never traded, by the cascade, the paper trader or a backtest (issue 15, defect 8)."""

from __future__ import annotations

from datetime import date

import pytest

from agent.backtest.engine import quant_deps, walk_forward
from agent.graph import build_graph, run_cascade
from agent.market.csv_files import CsvProvider
from agent.store.jsonl import DecisionSink
from agent.trading.trader import PaperTrader
from tests.conftest import (
    DAILY_DIR,
    LOOSE_RISK,
    make_deps,
    make_settings,
    require_shared_data,
)

BIG = {**LOOSE_RISK, ("risk", "capital"): 1e10}  # room for lots of an index quoted at 130,000 points


def test_an_all_pass_cascade_on_ibov_is_recorded_as_an_index_hold(tmp_path):
    require_shared_data()
    settings = make_settings({**BIG, ("market", "source"): "csv", ("market", "data_dir"): DAILY_DIR})
    deps = make_deps(tmp_path, settings=settings, market=CsvProvider(DAILY_DIR))
    record = run_cascade(build_graph(deps), "IBOV", as_of="2025-06-27")
    assert [layer["passed"] for layer in record["layers"]] == [True] * 5  # analysed through every layer
    assert record["risk"]["shares"] > 0  # it would have been a BUY of a stock
    assert record["decision"] == "HOLD" and record["instrument"] == "index"
    assert record["discarded_at"] == "portfolio" and "index" in record["reason"] and "never traded" in record["reason"]
    assert list(deps.sink.records()) == [record]  # its own record, in the same sink as the stocks'

    stock = run_cascade(build_graph(deps), "PETR4", as_of="2025-06-27")
    assert stock["instrument"] == "stock" and stock["decision"] == "BUY"


def test_the_paper_trader_refuses_an_index_even_when_handed_a_buy(tmp_path):
    trader = PaperTrader.from_settings(make_settings({**BIG, ("database_path",): tmp_path / "agent.db",
                                                      ("logging", "dir"): tmp_path}))
    assert "index" in trader.guard("IBOV", "IBOV-2025-06-27-x")
    assert trader.guard("PETR4", "PETR4-2025-06-27-x") is None
    forged = {"decision": "BUY", "ticker": "IBOV", "decision_id": "IBOV-2025-06-27-x", "bar_date": "2025-06-27",
              "position": {"shares": 700, "entry": 130_000.0, "stop": 128_000.0, "take_profit": 135_000.0,
                           "size_factor": 1.0}}
    assert trader.on_decision(forged) is None
    assert trader.broker.orders() == []


@pytest.mark.parametrize("ticker", ["IBOV", "^BVSP"])
def test_a_quant_backtest_makes_no_trade_on_the_index(tmp_path, ticker):
    require_shared_data()
    settings = make_settings({**BIG, ("market", "source"): "csv", ("market", "data_dir"): DAILY_DIR})
    sink = DecisionSink(tmp_path / "records")
    run = walk_forward(quant_deps(settings, CsvProvider(DAILY_DIR), sink), [ticker], date(2024, 1, 2),
                       date(2024, 12, 30), tmp_path / "work")
    records = list(sink.records())
    assert len(records) > 200 and run.trades == []
    assert {r["decision"] for r in records} == {"HOLD"} and {r["instrument"] for r in records} == {"index"}
    assert any("never traded" in r["reason"] for r in records)  # quant rules did pass on some days
