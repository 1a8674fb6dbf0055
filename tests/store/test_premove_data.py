"""Data written before the package move (agent/*.py flat, commit dbcb322) is read after it.

The fixtures are SQL dumps of a ledger and an LLM cache that the old code wrote for one BUY on the
simulated PETR4 (see /tests/fixtures/premove/decision.json): decision ids, cache keys and ledger rows
store no module paths, so the same decision asked again is answered from the old cache, gets the
same id, and the ledger opens with its trades and kill-switch state.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from agent.eval.passing import PASS
from agent.graph import build_graph, run_cascade
from agent.llm.cache import LLMCache
from agent.trading.broker import PaperBroker
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.conftest import AS_OF, FakeFactory, make_deps

PREMOVE = Path(__file__).resolve().parents[1] / "fixtures" / "premove"


def restore(dump: str, target: Path) -> Path:
    with sqlite3.connect(target) as con:
        con.executescript((PREMOVE / dump).read_text())
    return target


def test_the_old_llm_cache_answers_the_same_decision_with_the_same_id(tmp_path):
    before = json.loads((PREMOVE / "decision.json").read_text())
    factory = FakeFactory({layer: RuntimeError("asked the model: the old cache was not used") for layer in PASS})
    deps = make_deps(tmp_path, factory=factory)
    deps.llm_cache = LLMCache(restore("llm_cache.sql", tmp_path / "llm_cache.db"))
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert factory.calls == []
    assert [layer["cached"] for layer in record["layers"]] == [True] * 5
    assert (record["decision_id"], record["decision"], record["position"]) == \
        (before["decision_id"], before["decision"], before["position"])


def test_the_old_ledger_opens_with_its_trades_orders_and_kill_switch(tmp_path):
    before = json.loads((PREMOVE / "decision.json").read_text())
    db = restore("agent.sql", tmp_path / "agent.db")
    broker = PaperBroker(db, tmp_path / "trades.jsonl", capital=1.0)  # an existing account keeps its capital
    assert len(broker.trades()) == before["trades"] and broker.positions() == before["positions"]
    assert broker.order_status(before["decision_id"]) == "filled"
    assert broker.cash != 1.0
    switch = KillSwitch(db)
    assert switch.state == TradingState.NO_NEW_BUYS and switch.history()[-1]["reason"] == "written before the move"
