"""Graph routing with fake chat models: every layer's pass and discard path, and the decision."""

from __future__ import annotations

import pytest

from agent.config import LAYER_NAMES
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph, run_cascade
from agent.market.csv_files import CsvProvider
from agent.ops.metrics import COUNTERS
from agent.record import DecisionRecord
from agent.store.jsonl import read_jsonl
from tests.conftest import AS_OF, DISCARD, FakeFactory, make_deps, make_settings


def decide(tmp_path, answers=None, **kwargs):
    factory = kwargs.pop("factory", None) or FakeFactory({**PASS, **(answers or {})})
    deps = make_deps(tmp_path, factory=factory, **kwargs)
    record = run_cascade(build_graph(deps), "PETR4", as_of=kwargs.pop("as_of", AS_OF))
    return record, factory, deps


def test_every_layer_passing_gives_buy_with_five_layers(tmp_path):
    record, factory, deps = decide(tmp_path)
    assert record["decision"] == "BUY"
    assert record["discarded_at"] is None
    assert [layer["layer"] for layer in record["layers"]] == list(LAYER_NAMES)
    assert all(layer["passed"] for layer in record["layers"])
    assert factory.calls == list(LAYER_NAMES)
    assert record["confidence"] == pytest.approx(0.9)
    assert record["position"]["shares"] > 0 and record["position"]["shares"] % 100 == 0
    assert record["bar_date"] == AS_OF
    DecisionRecord.model_validate(record)  # the record honours its schema


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_each_layer_discard_stops_the_cascade_with_hold(tmp_path, layer):
    record, factory, _ = decide(tmp_path, {layer: DISCARD[layer]})
    index = LAYER_NAMES.index(layer)
    assert record["decision"] == "HOLD"
    assert record["discarded_at"] == layer
    assert [r["layer"] for r in record["layers"]] == list(LAYER_NAMES[: index + 1])
    assert factory.calls == list(LAYER_NAMES[: index + 1]), "no layer after the discard may run"
    assert record["layers"][-1]["passed"] is False
    assert record["reason"] == record["layers"][-1]["reason"]
    assert COUNTERS.get("layer_results_total", layer=layer, outcome="discard") == 1


def test_final_score_below_min_confidence_is_hold_with_its_confidence(tmp_path):
    record, _, _ = decide(tmp_path, {"final_score": {"score": 0.74, "reason": "close"}})
    assert record["decision"] == "HOLD"
    assert record["confidence"] == pytest.approx(0.74)
    assert "MIN_CONFIDENCE 0.75" in record["reason"]


def test_min_confidence_comes_from_config(tmp_path):
    settings = make_settings({**LOOSE_RISK, ("decision", "min_confidence"): 0.95})
    record, _, _ = decide(tmp_path, settings=settings)
    assert record["decision"] == "HOLD" and record["discarded_at"] == "final_score"


def test_risk_rule_blocks_before_the_risk_llm_is_called(tmp_path):
    settings = make_settings({**LOOSE_RISK, ("risk", "min_reward_risk"): 15.0})
    record, factory, _ = decide(tmp_path, settings=settings)
    risk_layer = record["layers"][-1]
    assert record["decision"] == "HOLD" and record["discarded_at"] == "risk"
    assert risk_layer["model"] == "rules" and risk_layer["provider"] == "code"
    assert "reward/risk" in risk_layer["reason"]
    assert "risk" not in factory.calls


def test_risk_llm_can_only_shrink_the_position(tmp_path):
    full, _, _ = decide(tmp_path / "a")
    half, _, _ = decide(tmp_path / "b", {"risk": {**PASS["risk"], "size_factor": 0.5}})
    assert half["decision"] == "BUY"
    assert half["position"]["shares"] <= full["position"]["shares"] // 2
    assert half["position"]["size_factor"] == pytest.approx(0.5)


def test_risk_llm_asking_for_a_bigger_position_is_discarded(tmp_path):
    record, _, _ = decide(tmp_path, {"risk": {**PASS["risk"], "size_factor": 1.5}})
    assert record["decision"] == "HOLD" and record["discarded_at"] == "risk"
    assert record["layers"][-1]["error"] == "out_of_range"


def test_risk_llm_that_shrinks_to_zero_lots_holds(tmp_path):
    record, _, _ = decide(tmp_path, {"risk": {**PASS["risk"], "size_factor": 0.0}})
    assert record["decision"] == "HOLD" and record["discarded_at"] == "risk"


def test_stale_bars_discard_at_data_validation_without_the_llm(tmp_path):
    factory = FakeFactory(PASS)
    deps = make_deps(tmp_path, factory=factory)
    deps.market.today = __import__("datetime").date(2025, 6, 1)  # the feed stopped a month before "now"
    record = run_cascade(build_graph(deps), "PETR4")  # live decision: no as_of
    assert record["discarded_at"] == "data_validation"
    assert "stale data" in record["reason"]
    assert "data_validation" not in factory.calls


def test_misquoted_indicator_is_flagged_and_discarded(tmp_path):
    bad = {**PASS["technical"], "cited": {"rsi": 99.0}}
    record, _, _ = decide(tmp_path, {"technical": bad})
    layer = record["layers"][-1]
    assert record["discarded_at"] == "technical"
    assert layer["flags"] and "rsi" in layer["flags"][0]
    assert COUNTERS.get("llm_claim_mismatches_total", layer="technical") == 1


def test_correctly_quoted_indicator_passes(tmp_path):
    first, _, deps = decide(tmp_path / "a")
    good = {**PASS["technical"], "cited": {"rsi": first["indicators"]["rsi"]}}
    record, _, _ = decide(tmp_path / "b", {"technical": good})
    assert record["decision"] == "BUY"
    assert record["layers"][1]["flags"] == []


def test_misquote_policy_flag_keeps_the_layer_but_records_it(tmp_path):
    settings = make_settings({**LOOSE_RISK, ("llm", "on_claim_mismatch"): "flag"})
    record, _, _ = decide(tmp_path, {"technical": {**PASS["technical"], "cited": {"rsi": 1.0}}}, settings=settings)
    assert record["layers"][1]["passed"] is True
    assert record["layers"][1]["flags"]


def test_market_data_failure_is_hold_with_reason_and_no_llm_call(tmp_path):
    (tmp_path / "data").mkdir()
    factory = FakeFactory(PASS)
    record, _, _ = decide(tmp_path, factory=factory, market=CsvProvider(tmp_path / "data"))
    assert record["decision"] == "HOLD"
    assert record["discarded_at"] == "market_data"
    assert "no 1d file for PETR4" in record["reason"]
    assert record["layers"] == [] and factory.calls == []


def test_record_is_appended_to_the_sink_once_per_decision(tmp_path):
    record, _, deps = decide(tmp_path)
    records = list(deps.sink.records())
    assert records == [record]
    path = deps.sink.path_for(__import__("datetime").datetime.fromisoformat(record["ts"]))
    assert path.parent.name == "2025-06" and path.name == "30.jsonl"
    assert list(read_jsonl(path)) == [record]


def test_decision_id_is_deterministic_and_tracks_config(tmp_path):
    a, _, _ = decide(tmp_path / "a")
    b, _, _ = decide(tmp_path / "b")
    other = make_settings({**LOOSE_RISK, ("decision", "min_confidence"): 0.8})
    c, _, _ = decide(tmp_path / "c", settings=other)
    assert a["decision_id"] == b["decision_id"]
    assert a["decision_id"] != c["decision_id"]
    assert a["decision_id"].startswith("PETR4-2025-06-30-")


def test_provenance_tags(tmp_path):
    record, _, _ = decide(tmp_path)
    assert record["data_source"] == "sim"
    assert record["mode"] == "simulation"
    assert "market:sim" in record["defaults_in_use"]
    assert all(layer["provider"] == "fake" for layer in record["layers"])


def _csv_deps(tmp_path, frame_filter=None, clock=None):
    """Deps on a copy of the real PETR4 daily file, optionally with rows removed."""
    import pandas as pd

    from tests.conftest import require_shared_data

    src = require_shared_data() / "PETR4.SA.csv"
    (tmp_path / "data").mkdir()
    df = pd.read_csv(src)
    if frame_filter is not None:
        df = df[~df["Date"].isin(frame_filter)]
    df.to_csv(tmp_path / "data" / "PETR4.SA.csv", index=False)
    factory = FakeFactory(PASS)
    deps = make_deps(tmp_path, factory=factory, market=CsvProvider(tmp_path / "data"))
    if clock is not None:
        deps.clock = clock
    return deps, factory


def test_real_bars_replayed_as_of_a_session_are_not_stale(tmp_path):
    deps, _ = _csv_deps(tmp_path)
    record = run_cascade(build_graph(deps), "PETR4", as_of="2025-06-30")
    assert record["decision"] == "BUY", record["reason"]
    assert record["data_source"] == "csv" and record["defaults_in_use"] == []


def test_live_decision_on_real_bars_months_old_is_stale_by_the_b3_calendar(tmp_path):
    from datetime import datetime, timezone

    deps, factory = _csv_deps(tmp_path, clock=lambda: datetime(2026, 3, 2, 21, 0, tzinfo=timezone.utc))
    record = run_cascade(build_graph(deps), "PETR4")  # the file ends on 2026-02-06
    assert record["discarded_at"] == "data_validation"
    assert "B3 sessions behind" in record["reason"] and "data_validation" not in factory.calls


def test_a_missing_recent_session_is_caught(tmp_path):
    deps, factory = _csv_deps(tmp_path, frame_filter=["2025-06-26"])
    record = run_cascade(build_graph(deps), "PETR4", as_of="2025-06-30")
    assert record["discarded_at"] == "data_validation"
    assert "2025-06-26" in record["reason"]
