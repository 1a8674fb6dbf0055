"""Answers sized for small models, with fake models: an answer that contradicts itself is invalid (with
its reason), a reason cut by max_tokens keeps the decision, and every layer records its token counts."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.config import LAYER_NAMES
from agent.eval.passing import PASS
from agent.graph import build_graph, run_cascade
from agent.llm.cache import LLMCache
from agent.ops.metrics import COUNTERS
from agent.record import DecisionRecord
from tests.conftest import AS_OF, FakeFactory, make_deps


class CountingChatModel(BaseChatModel):
    """Answers one fixed text and reports token usage, as llama.cpp and Ollama do."""

    text: str
    tokens_in: int = 120
    tokens_out: int = 30

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        usage = {"input_tokens": self.tokens_in, "output_tokens": self.tokens_out,
                 "total_tokens": self.tokens_in + self.tokens_out}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.text, usage_metadata=usage))])


class CountingFactory(FakeFactory):
    def __init__(self, answers: dict):
        super().__init__(answers)

    def __call__(self, layer: str, schema: dict) -> BaseChatModel:
        self.calls.append(layer)
        answer = self.answers[layer]
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return CountingChatModel(text=text, tokens_in=100 + LAYER_NAMES.index(layer), tokens_out=20 + len(layer))


def decide(tmp_path, answers: dict, **kwargs):
    deps = make_deps(tmp_path, factory=CountingFactory({**PASS, **answers}), **kwargs)
    return run_cascade(build_graph(deps), "PETR4", as_of=AS_OF), deps


@pytest.mark.parametrize("layer, answer, why", [
    ("sentiment", {"sentiment": "positive", "score": 0.0, "reason": "x"}, "sentiment 'positive' with score 0.00"),
    ("sentiment", {"sentiment": "negative", "score": 0.9, "reason": "x"}, "sentiment 'negative' with score 0.90"),
    ("sentiment", {"sentiment": "neutral", "score": 0.95, "reason": "x"}, "sentiment 'neutral' with score 0.95"),
    ("technical", {"trend": "bullish", "score": 0.2, "reason": "x"}, "trend 'bullish' with score 0.20"),
    ("risk", {"approve": True, "risk": 0.9, "size_factor": 1.0, "reason": "x"},
     "approve true with risk 0.90 above the limit 0.6"),
    ("risk", {"approve": True, "risk": 0.1, "size_factor": 0.0, "reason": "x"}, "approve true with size_factor 0"),
    ("data_validation", {"valid": True, "score": 0.1, "issues": [], "reason": "x"}, "valid true with score 0.10"),
    ("data_validation", {"valid": False, "score": 0.9, "issues": ["gap"], "reason": "x"}, "valid false with score 0.90"),
])
def test_an_answer_that_contradicts_itself_is_invalid_with_its_reason(tmp_path, layer, answer, why):
    # the contradictions that would pass a gate included (positive with 0.95 passes nothing, bullish with
    # 0.2 neither; approve true with risk 0.9 would be a plain discard): all are invalid, counted as such
    record, _ = decide(tmp_path, {layer: answer})
    result = record["layers"][-1]
    assert record["discarded_at"] == layer and result["layer"] == layer
    assert result["error"] == "inconsistent"
    assert why in result["reason"]
    assert COUNTERS.get("llm_invalid_outputs_total", layer=layer, kind="inconsistent") == 1


@pytest.mark.parametrize("layer, answer", [
    ("sentiment", {"sentiment": "neutral", "score": 0.5, "reason": "flat"}),
    ("technical", {"trend": "bearish", "score": 0.2, "reason": "downtrend"}),
    ("risk", {"approve": False, "risk": 0.1, "size_factor": 1.0, "reason": "refusing is always allowed"}),
])
def test_a_consistent_discard_is_a_plain_discard(tmp_path, layer, answer):
    record, _ = decide(tmp_path, {layer: answer})
    assert record["discarded_at"] == layer and record["layers"][-1]["error"] is None


def test_a_reason_cut_by_max_tokens_keeps_the_decision(tmp_path):
    cut = '{"sentiment":"positive","score":0.85,"reason":"orders rose for the third quarter in a row and the compa'
    record, _ = decide(tmp_path, {"sentiment": cut})
    first = record["layers"][0]
    assert first["passed"] and first["error"] is None
    assert first["output"]["reason"] == "orders rose for the third quarter in a row and the compa..."
    # the technical layer's real answer in the VALE3/ITUB4 backtest: a fenced, pretty-printed answer cut at 40 tokens
    fenced = '```json\n{\n  "trend": "bullish",\n  "score": 0.8,\n  "reason": "close above SMA 20, 50 and 2'
    record, _ = decide(tmp_path, {"technical": fenced})
    second = record["layers"][1]
    assert second["passed"] and second["error"] is None and second["output"]["reason"] == "close above SMA 20, 50 and 2..."
    # the final layer's real answer on the bench (ITUB4): its long reason closed, the brace cut at 64 tokens
    brace_cut = '{"score":0.8,"reason":"The technical analysis suggests a balanced momentum, but the risk is high."'
    record, _ = decide(tmp_path, {"final_score": brace_cut})
    last = record["layers"][-1]
    assert last["layer"] == "final_score" and last["error"] is None
    assert last["output"]["reason"] == "The technical analysis suggests a balanced momentum, but the risk is high."
    cut_in_decision = '{"sentiment":"positive","sco'
    record, _ = decide(tmp_path, {"sentiment": cut_in_decision})
    assert record["layers"][0]["error"] == "invalid_json"


def test_every_layer_records_its_tokens_and_prometheus_counts_them(tmp_path):
    record, _ = decide(tmp_path, {})
    DecisionRecord.model_validate(record)
    assert record["decision"] == "BUY"
    for i, layer in enumerate(record["layers"]):
        assert (layer["tokens_in"], layer["tokens_out"]) == (100 + i, 20 + len(layer["layer"]))
        assert COUNTERS.get("llm_tokens_total", layer=layer["layer"], direction="in") == 100 + i
        assert layer["think"] is None  # not an Ollama call: no think option sent
    # an invalid answer still cost tokens, and says so
    record, _ = decide(tmp_path, {"technical": "not json at all"})
    assert record["layers"][1]["error"] == "invalid_json" and record["layers"][1]["tokens_out"] == 29


def test_a_replayed_answer_keeps_its_token_counts_and_is_not_counted_again(tmp_path):
    cache = LLMCache(tmp_path / "cache.db")
    first, deps = decide(tmp_path, {})
    deps.llm_cache = cache
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)  # fills the cache
    COUNTERS.reset()
    again = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert all(layer["cached"] for layer in again["layers"])
    assert [(la["tokens_in"], la["tokens_out"]) for la in again["layers"]] == \
        [(la["tokens_in"], la["tokens_out"]) for la in record["layers"]]
    assert COUNTERS.get("llm_tokens_total") == 0
    cache.close()


SEEN: dict[str, str] = {}


class RecordingChatModel(CountingChatModel):
    layer: str = ""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        SEEN[self.layer] = messages[-1].content
        return super()._generate(messages, stop, run_manager, **kwargs)


class RecordingFactory(CountingFactory):
    def __call__(self, layer: str, schema: dict) -> BaseChatModel:
        model = super().__call__(layer, schema)
        return RecordingChatModel(text=model.text, layer=layer)


def test_the_final_layer_reads_what_each_earlier_model_answered(tmp_path):
    SEEN.clear()
    deps = make_deps(tmp_path, factory=RecordingFactory({**PASS}))
    record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert record["decision"] == "BUY"
    final_input = json.loads(SEEN["final_score"].split(": ", 1)[1])
    by_layer = {r["layer"]: r for r in record["layers"]}
    for layer in ("sentiment", "technical", "risk", "data_validation"):
        # the model's own reason after its recorded score, not the gate's sentence around it
        assert final_input["earlier_layers"][layer] == f"{by_layer[layer]['score']}: {PASS[layer]['reason']}"
        assert by_layer[layer]["reason"] != PASS[layer]["reason"]
    assert set(final_input) == {"earlier_layers", "risk"}
