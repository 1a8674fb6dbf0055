"""Data written before the package move (agent/*.py flat, commit dbcb322) is read after it.

The fixtures are SQL dumps of a ledger and an LLM cache that the old code wrote for one BUY on the
simulated PETR4, and what it asked and decided (tests/fixtures/premove/decision.json, written by the old
code too): cache keys, decision ids and ledger rows store no module paths, so the old cache answers under
the keys computed today, the id derivation is unchanged, and the ledger opens with its trades and
kill-switch state. (A question whose inputs changed since, e.g. a richer risk snapshot, is rightly a new one.)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from agent.eval.passing import PASS
from agent.llm.cache import LLMCache, cache_key
from agent.record import decision_id
from agent.trading.broker import PaperBroker
from agent.trading.kill_switch import KillSwitch, TradingState

PREMOVE = Path(__file__).resolve().parents[1] / "fixtures" / "premove"


def restore(dump: str, target: Path) -> Path:
    with sqlite3.connect(target) as con:
        con.executescript((PREMOVE / dump).read_text())
    return target


def test_the_old_llm_cache_is_found_under_the_keys_the_code_computes_now(tmp_path):
    """Each of the five questions the old code asked is keyed the same by today's ``cache_key`` (it hashes
    what was asked, never where the code lives), and the old cache file answers it."""
    before = json.loads((PREMOVE / "decision.json").read_text())
    cache = LLMCache(restore("llm_cache.sql", tmp_path / "llm_cache.db"))
    asked = before["cache_keys"]
    assert [a["kwargs"]["layer"] for a in asked] == ["sentiment", "technical", "risk", "data_validation", "final_score"]
    for question in asked:
        assert cache_key(**question["kwargs"]) == question["key"]
        answer = cache.get(question["key"], question["kwargs"]["layer"])
        assert answer is not None and json.loads(answer.text) == PASS[question["kwargs"]["layer"]]
    cache.close()


def test_a_decision_id_is_derived_from_what_was_decided_not_from_module_paths():
    before = json.loads((PREMOVE / "decision.json").read_text())
    assert decision_id(before["ticker"], before["bar_date"], before["config_version"], before["prompt_version"]) == \
        before["decision_id"]


def test_the_old_ledger_opens_with_its_trades_orders_and_kill_switch(tmp_path):
    before = json.loads((PREMOVE / "decision.json").read_text())
    db = restore("agent.sql", tmp_path / "agent.db")
    broker = PaperBroker(db, tmp_path / "trades.jsonl", capital=1.0)  # an existing account keeps its capital
    assert len(broker.trades()) == before["trades"] and broker.positions() == before["positions"]
    assert broker.order_status(before["decision_id"]) == "filled"
    assert broker.cash != 1.0
    switch = KillSwitch(db)
    assert switch.state == TradingState.NO_NEW_BUYS and switch.history()[-1]["reason"] == "written before the move"
