"""The agent against a local Ollama stub (agent/eval/ollama_stub.py): the real langchain-ollama and
ollama clients, real HTTP on loopback, no model.

Covers the provider probe (``/api/tags``), what ChatOllama sends to ``/api/chat``, a full
cascade through HTTP, and every transport or output failure ending as a recorded HOLD.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent.config import ENV_KEYS, LAYER_NAMES, Settings, load_settings
from agent.deps import CascadeDeps
from agent.errors import ProviderError
from agent.eval.ollama_stub import OllamaStub, closed_port_url
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph, run_cascade
from agent.layers import LAYERS
from agent.layers.sentiment import SentimentAnswer
from agent.llm.providers import (
    ProviderChoice,
    embedded_runtime_available,
    make_model_factory,
    ollama_pulled_models,
    resolve_provider,
)
from agent.market.sim import SimProvider
from agent.ops.metrics import COUNTERS
from agent.prompts import PromptLibrary
from agent.store.jsonl import DecisionSink
from tests.conftest import AS_OF, FIXED_NOW

# The five layers' Ollama models (set through their env names, so config.yaml edits don't matter).
MODELS = {
    "sentiment": "smollm2:1.7b",
    "technical": "mistral:7b",
    "risk": "deepseek-r1:8b",
    "data_validation": "qwen2.5-coder:7b",
    "final_score": "gemma3:4b",
}
MODEL_ENV = {path[1]: env for env, path in ENV_KEYS.items() if path[0] == "layers" and path[-1] == "model"}
CASCADE_ORDER = [MODELS[layer] for layer in LAYER_NAMES]


# ------------------------------------------------------------------ helpers and fixtures

def passing_answers() -> dict[str, str]:
    """Model name -> an answer that passes its layer's gate."""
    return {MODELS[layer]: json.dumps(PASS[layer]) for layer in LAYER_NAMES}


def stub_settings(host: str, timeout_s: float = 5.0) -> Settings:
    """Settings pointing every layer at ``host``: no retries, no deterministic risk block."""
    environ = {"OLLAMA_HOST": host, "OLLAMA_TIMEOUT": str(timeout_s),
               **{MODEL_ENV[layer]: model for layer, model in MODELS.items()}}
    return load_settings(env_file=None, environ=environ,
                         overrides={**LOOSE_RISK, ("llm", "retries"): 0, ("ollama", "probe_timeout_s"): 1.0})


def ollama_choice(settings: Settings) -> ProviderChoice:
    """The Ollama provider, as resolve_provider would choose it, without probing."""
    return ProviderChoice("ollama", "contract test", {layer: settings.layers.model_for(layer) for layer in LAYER_NAMES})


def ollama_deps(settings: Settings, tmp_path: Path) -> CascadeDeps:
    """The real Ollama model factory, simulated bars and a temporary sink."""
    choice = ollama_choice(settings)
    return CascadeDeps(
        settings=settings,
        market=SimProvider(seed=settings.market.sim_seed),
        provider=choice,
        model_factory=make_model_factory(choice, settings),
        prompts=PromptLibrary(),
        sink=DecisionSink(tmp_path),
        clock=lambda: FIXED_NOW,
        sleep=lambda s: None,
    )


def decide(host: str, tmp_path: Path, timeout_s: float = 5.0) -> dict[str, Any]:
    """One PETR4 decision with every layer served by the Ollama at ``host``."""
    return run_cascade(build_graph(ollama_deps(stub_settings(host, timeout_s), tmp_path)), "PETR4", as_of=AS_OF)


def layer_result(record: dict[str, Any], layer: str) -> dict[str, Any]:
    return next(r for r in record["layers"] if r["layer"] == layer)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """A proxy from the environment must not intercept loopback traffic."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stub():
    """An Ollama stub serving the five layer models, each answering a passing verdict."""
    with OllamaStub(models=MODELS.values(), content=passing_answers()) as running:
        yield running


# ------------------------------------------------------------------ the stub itself

def test_stub_streams_ndjson_like_ollama(stub):
    """Streamed chat: one JSON object per line, the last one done with its usage counters."""
    stub.content = {"mistral:7b": '{"trend": "bullish", "score": 0.8, "reason": "uptrend"}'}
    body = {"model": "mistral:7b", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{stub.url}/api/chat", json=body, timeout=2) as resp:
        assert resp.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert len(lines) > 2 and not any(line["done"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert {"total_duration", "eval_count", "prompt_eval_count"} <= final.keys()
    assert "".join(line["message"]["content"] for line in lines) == stub.content["mistral:7b"]
    assert stub.requests == [body]


# ------------------------------------------------------------------ provider probe

def test_pulled_models_are_the_stub_models_canonicalised(stub):
    stub.models = ["mistral:7b", "smollm2"]
    pulled = ollama_pulled_models(stub.url, 1.0)
    assert set(pulled) == {"mistral:7b", "smollm2:latest"}
    assert all(len(digest) == 64 for digest in pulled.values())  # what the LLM cache keys a model by
    assert stub.calls == [("GET", "/api/tags")]


def test_pulled_models_raise_provider_error_naming_the_host_when_nothing_listens():
    host = closed_port_url()
    with pytest.raises(ProviderError, match=re.escape(host)):
        ollama_pulled_models(host, 0.5)


def test_resolve_provider_picks_ollama_when_every_model_is_pulled(stub):
    choice = resolve_provider(stub_settings(stub.url), "ollama")
    assert choice.name == "ollama"
    assert choice.models == MODELS


def test_the_chosen_models_carry_their_digests_and_a_re_pull_changes_them(stub):
    first = resolve_provider(stub_settings(stub.url), "ollama")
    assert first.digests["risk"] == hashlib.sha256(MODELS["risk"].encode()).hexdigest()
    stub.digests[MODELS["risk"]] = "f" * 64  # `ollama pull` brought new weights under the same tag
    second = resolve_provider(stub_settings(stub.url), "ollama")
    assert second.digests["risk"] == "f" * 64 and second.digests["technical"] == first.digests["technical"]


def test_resolve_provider_names_the_pull_command_for_a_missing_model(stub):
    stub.models = [m for m in MODELS.values() if m != MODELS["risk"]]
    with pytest.raises(ProviderError) as excinfo:
        resolve_provider(stub_settings(stub.url), "ollama")
    message = str(excinfo.value)
    assert f"ollama pull {MODELS['risk']}" in message
    assert f"ollama pull {MODELS['technical']}" not in message


def test_resolve_provider_auto_falls_back_to_embedded_naming_the_missing_model(stub):
    problem = embedded_runtime_available()
    if problem is not None:
        pytest.skip(f"embedded fallback unavailable here: {problem}")
    stub.models = [m for m in MODELS.values() if m != MODELS["final_score"]]
    choice = resolve_provider(stub_settings(stub.url), "auto")
    assert choice.name == "embedded"
    assert MODELS["final_score"] in choice.reason
    assert MODELS["sentiment"] not in choice.reason


# ------------------------------------------------------------------ what ChatOllama sends

def test_factory_model_sends_schema_model_keep_alive_and_options(stub):
    settings = stub_settings(stub.url)
    schema = SentimentAnswer.model_json_schema()
    model = make_model_factory(ollama_choice(settings), settings)("sentiment", schema)
    messages = [SystemMessage("You judge sentiment."), HumanMessage("PETR4 headlines: none")]

    # Both response shapes of the stub, whichever one the factory's model uses by default.
    answers = [model.invoke(messages, stream=True).content, model.invoke(messages, stream=False).content]

    assert answers == [passing_answers()[MODELS["sentiment"]]] * 2
    assert [body["stream"] for body in stub.requests] == [True, False]
    for sent in stub.requests:
        assert sent["model"] == MODELS["sentiment"]
        assert sent["format"] == schema
        assert sent["keep_alive"] == settings.ollama.keep_alive
        assert sent["options"]["temperature"] == settings.llm.temperature
        assert sent["options"]["num_predict"] == settings.layers.sentiment.max_tokens == 64  # the layer's own cap
        assert "think" not in sent  # think: null on layer 1, so Ollama's default stands
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_the_reasoning_layer_asks_ollama_not_to_think(stub):
    """layers.risk.think: false goes out as Ollama's think option, so deepseek-r1 answers without a long preamble."""
    settings = stub_settings(stub.url)
    assert settings.layers.risk.think is False
    model = make_model_factory(ollama_choice(settings), settings)("risk", SentimentAnswer.model_json_schema())
    model.invoke([SystemMessage("You judge risk."), HumanMessage("PETR4")], stream=False)
    sent = stub.requests[-1]
    assert sent["think"] is False
    assert sent["options"]["num_predict"] == settings.layers.risk.max_tokens


def test_ollama_timeout_bounds_the_whole_reply_not_each_token(stub):
    """A model that keeps streaming slowly must still time out after OLLAMA_TIMEOUT."""
    stub.piece_delay_s = 0.15  # about 1 s for the whole answer; streamed, a line every 0.15 s
    settings = stub_settings(stub.url, timeout_s=0.5)
    model = make_model_factory(ollama_choice(settings), settings)("sentiment", SentimentAnswer.model_json_schema())
    with pytest.raises(httpx.TimeoutException):
        model.invoke([HumanMessage("PETR4")])


# ------------------------------------------------------------------ full cascade over HTTP

def assert_buy_through_ollama(record: dict[str, Any], stub: OllamaStub) -> None:
    assert record["decision"] == "BUY", record["reason"]
    assert record["llm_provider"] == "ollama"
    assert [r["layer"] for r in record["layers"]] == list(LAYER_NAMES)
    for result in record["layers"]:
        assert result["provider"] == "ollama" and result["passed"]
        assert result["model"] == MODELS[result["layer"]]
    assert stub.chat_models == CASCADE_ORDER, "one call per layer, in cascade order"
    for layer, body in zip(LAYER_NAMES, stub.requests):
        assert set(LAYERS[layer].answer.model_fields) <= set(body["format"]["properties"])


def test_cascade_through_the_stub_buys(stub, tmp_path):
    record = decide(stub.url, tmp_path)
    assert_buy_through_ollama(record, stub)
    assert record["confidence"] == pytest.approx(PASS["final_score"]["score"])
    assert [r["decision_id"] for r in DecisionSink(tmp_path).records()] == [record["decision_id"]]


def test_cascade_accepts_a_think_block_before_the_json(stub, tmp_path):
    """A reasoning model (deepseek style) thinks first; a decoy verdict inside <think> is ignored."""
    decoy = json.dumps({"trend": "bearish", "score": 0.1, "reason": "first guess"})
    stub.content[MODELS["technical"]] = (
        f"<think>\nMACD is above its signal. Draft: {decoy}. No, revise.\n</think>\n\n"
        + json.dumps(PASS["technical"]))
    record = decide(stub.url, tmp_path)
    assert_buy_through_ollama(record, stub)
    assert layer_result(record, "technical")["score"] == pytest.approx(PASS["technical"]["score"])


# ------------------------------------------------------------------ failures end as HOLD

@dataclass(frozen=True)
class Failure:
    layer: str  # the layer that must discard
    error: str  # LayerResult.error
    in_reason: str  # text the recorded reason must contain
    arrange: Callable[[OllamaStub], str]  # breaks the stub; returns the host the agent uses
    timeout_s: float = 5.0


def _slow(stub: OllamaStub) -> str:
    stub.delay_s = 2.0
    return stub.url


def _not_pulled(layer: str) -> Callable[[OllamaStub], str]:
    def arrange(stub: OllamaStub) -> str:
        stub.models = [m for m in MODELS.values() if m != MODELS[layer]]
        return stub.url
    return arrange


def _answers(layer: str, text: str) -> Callable[[OllamaStub], str]:
    def arrange(stub: OllamaStub) -> str:
        stub.content[MODELS[layer]] = text
        return stub.url
    return arrange


def _server_error(stub: OllamaStub) -> str:
    stub.status = 500
    return stub.url


FAILURES = {
    "timeout": Failure("sentiment", "timeout", "timed out", _slow, timeout_s=0.5),
    "connection_refused": Failure("sentiment", "connection", "cannot reach", lambda stub: closed_port_url()),
    "model_not_found": Failure("technical", "model_missing", f"ollama pull {MODELS['technical']}",
                               _not_pulled("technical")),
    "invalid_json": Failure("risk", "invalid_json", "not a JSON object",
                            _answers("risk", "I would approve this trade, the risk looks fine.")),
    "score_out_of_range": Failure("final_score", "out_of_range", "1.7",
                                  _answers("final_score", json.dumps({"score": 1.7, "reason": "very sure"}))),
    "http_500": Failure("sentiment", "llm_error", "llama runner process has terminated", _server_error),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_ollama_failure_is_a_hold_with_the_reason(stub, tmp_path, failure):
    host = failure.arrange(stub)
    record = decide(host, tmp_path, timeout_s=failure.timeout_s)
    failed = record["layers"][-1]
    assert record["decision"] == "HOLD"
    assert record["discarded_at"] == failure.layer == failed["layer"]
    assert failed["error"] == failure.error
    assert failed["provider"] == "ollama" and failed["model"] == MODELS[failure.layer]
    assert failed["reason"] and failure.in_reason in failed["reason"]
    assert record["reason"] == failed["reason"]
    assert failed["latency_ms"] < 1500, "the client must give up or fail fast, not wait for the stub"
    assert COUNTERS.get("llm_invalid_outputs_total", layer=failure.layer, kind=failure.error) == 1
    called = CASCADE_ORDER[: LAYER_NAMES.index(failure.layer) + 1]
    assert stub.chat_models == (called if host == stub.url else []), "no layer after the failure is called"
