"""Untrusted LLM output: every kind of garbage ends as HOLD with the reason recorded and counted."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.errors import LLMError
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph, run_cascade
from agent.layers.final_score import FinalScoreAnswer
from agent.layers.sentiment import SentimentAnswer
from agent.llm.output import (
    check_citations,
    extract_json_object,
    parse_answer,
    strip_reasoning,
)
from agent.ops.metrics import COUNTERS
from tests.conftest import AS_OF, FakeFactory, make_deps, make_settings

GOOD_SENTIMENT = json.dumps(PASS["sentiment"])


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("I think PETR4 looks great, buy!", "invalid_json"),
        ('{"sentiment": "positive", "score": 0.9, "rea', "invalid_json"),  # cut before its reason (after it: kept)
        ('{"sentiment": "positive", "reason": "ok"', "schema_mismatch"),  # closed after its reason, a field missing
        ('{"sentiment": "positive", "score": 1.7, "reason": "ok"}', "out_of_range"),
        ('{"sentiment": "positive", "score": -0.2, "reason": "ok"}', "out_of_range"),
        ('{"sentiment": "positive", "score": NaN, "reason": "ok"}', "out_of_range"),
        ('{"sentiment": "positive", "reason": "no score"}', "schema_mismatch"),
        ('{"sentiment": "euphoric", "score": 0.9, "reason": "ok"}', "schema_mismatch"),
        ('{"sentiment": "positive", "score": true, "reason": "ok"}', "schema_mismatch"),
        ('{"sentiment": "positive", "score": "0.9", "reason": "ok"}', "schema_mismatch"),
        ('<think>the user wants JSON but I will ramble forever', "empty_output"),
        ("", "empty_output"),
        (httpx.ReadTimeout("timed out"), "timeout"),
        (TimeoutError(), "timeout"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection"),
        (ConnectionRefusedError(111, "Connection refused"), "connection"),
        (RuntimeError("CUDA out of memory"), "llm_error"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_garbage_from_the_first_layer_is_hold_with_reason(tmp_path, answer, kind):
    deps = make_deps(tmp_path, {"sentiment": answer})
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    layer = record["layers"][0]
    assert record["decision"] == "HOLD"
    assert record["discarded_at"] == "sentiment"
    assert layer["error"] == kind
    assert layer["passed"] is False and layer["score"] is None
    assert layer["reason"].startswith(f"LLM failure ({kind})")
    assert COUNTERS.get("llm_invalid_outputs_total", layer="sentiment", kind=kind) == 1
    assert list(deps.sink.records()) == [record], "the HOLD is still recorded"


def test_a_boolean_approval_in_disguise_is_not_an_approval(tmp_path):
    deps = make_deps(tmp_path, {"risk": {"risk": False, "approve": "yes", "size_factor": True, "reason": "ok"}})
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert record["discarded_at"] == "risk" and record["layers"][-1]["error"] == "schema_mismatch"


def test_think_wrapper_is_stripped_and_the_answer_used(tmp_path):
    wrapped = f"<think>RSI is neutral, oil is up... so positive.</think>\n{GOOD_SENTIMENT}"
    deps = make_deps(tmp_path, {"sentiment": wrapped})
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert record["layers"][0]["passed"] is True
    assert record["decision"] == "BUY"


def test_connection_errors_are_retried_then_discarded(tmp_path):
    settings = make_settings({**LOOSE_RISK, ("llm", "retries"): 2})
    factory = FakeFactory({**PASS, "technical": httpx.ConnectError("refused")})
    deps = make_deps(tmp_path, settings=settings, factory=factory)
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert factory.calls.count("technical") == 3
    assert record["discarded_at"] == "technical" and record["layers"][-1]["error"] == "connection"
    assert COUNTERS.get("llm_retries_total", layer="technical") == 3


def test_timeouts_are_not_retried(tmp_path):
    settings = make_settings({**LOOSE_RISK, ("llm", "retries"): 2})
    factory = FakeFactory({**PASS, "final_score": httpx.ReadTimeout("slow")})
    record = run_cascade(build_graph(make_deps(tmp_path, settings=settings, factory=factory)), "PETR4", as_of=AS_OF)
    assert factory.calls.count("final_score") == 1
    assert record["decision"] == "HOLD" and record["discarded_at"] == "final_score"
    assert record["confidence"] is None


def test_model_missing_names_the_pull_command(tmp_path):
    class NotFound(Exception):
        status_code = 404

    record = run_cascade(build_graph(make_deps(tmp_path, {"risk": NotFound("model not found")})), "PETR4", as_of=AS_OF)
    assert record["layers"][-1]["error"] == "model_missing"
    assert "ollama pull fake-risk" in record["reason"]


# ------------------------------------------------------------------ parsing units

def test_strip_reasoning_handles_closed_and_unclosed_blocks():
    assert strip_reasoning("<think>a</think>{}") == "{}"
    assert strip_reasoning("<THINK>\nmulti\nline</THINK> x <think>tail") == "x"


def test_extract_json_from_fence_and_prose():
    assert extract_json_object('Sure! ```json\n{"score": 0.5}\n``` done') == {"score": 0.5}
    assert extract_json_object('Answer: {"a": {"b": 1}} trailing {') == {"a": {"b": 1}}
    with pytest.raises(LLMError) as err:
        extract_json_object("[1, 2, 3]")
    assert err.value.kind == "invalid_json"


def test_parse_answer_messages_name_the_field():
    with pytest.raises(LLMError) as err:
        parse_answer('{"score": 3, "reason": "x"}', FinalScoreAnswer)
    assert err.value.kind == "out_of_range"
    assert "score" in str(err.value) and "3" in str(err.value)
    assert parse_answer(GOOD_SENTIMENT, SentimentAnswer).score == 0.9


def test_check_citations():
    computed = {"rsi": 55.0, "atr": 0.8}
    assert check_citations({"rsi": 55.5}, computed, 0.02) == []
    assert check_citations({"RSI": 60.0}, computed, 0.02) == ["cited rsi=60, computed 55"]
    assert check_citations({"price": 30.0}, computed, 0.02) == ["cited unknown value 'price'=30.0"]
