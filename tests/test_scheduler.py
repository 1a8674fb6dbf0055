"""Layer-major scheduling: the order of LLM calls, model switches, discards, concurrency and equivalence
with the ticker-major path."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.config import LAYER_NAMES
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph
from agent.ops.metrics import COUNTERS
from agent.scheduler import LayerMajorScheduler, decide_ticker_major
from tests.conftest import DISCARD, make_deps, make_settings

TICKERS = ["PETR4", "VALE3", "ITUB4"]


class Recorder:
    def __init__(self):
        self.log: list[tuple[str, str]] = []  # (layer, ticker) per call, in order
        self.live = [0, 0]  # [calls in flight now, most ever in flight]
        self.lock = threading.Lock()


class ScriptedModel(BaseChatModel):
    """Answers for one layer, per ticker (found in the prompt); logs each call and how many overlap."""

    layer: str
    answers: dict[str, Any]
    rec: Any  # a Recorder, shared by the five layers' models (Any: pydantic keeps the reference)
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        text = messages[-1].content
        ticker = next(t for t in TICKERS if t in text)
        rec = self.rec
        with rec.lock:
            rec.log.append((self.layer, ticker))
            rec.live[0] += 1
            rec.live[1] = max(rec.live)
        time.sleep(self.delay_s)
        with rec.lock:
            rec.live[0] -= 1
        answer = self.answers.get(ticker, PASS[self.layer])
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=json.dumps(answer)))])


def scripted(tmp_path, per_ticker: dict[str, dict[str, Any]] | None = None, delay_s: float = 0.0, parallel: int = 1):
    rec = Recorder()

    def factory(layer: str, schema: dict) -> BaseChatModel:
        answers = {t: a[layer] for t, a in (per_ticker or {}).items() if layer in a}
        return ScriptedModel(layer=layer, answers=answers, rec=rec, delay_s=delay_s)

    settings = make_settings({**LOOSE_RISK, ("ollama", "parallel"): parallel})
    deps = make_deps(tmp_path, settings=settings)
    deps.model_factory = factory
    return deps, rec.log, rec.live


def test_layer_major_asks_every_ticker_for_one_layer_before_the_next(tmp_path):
    deps, log, _ = scripted(tmp_path)
    results = LayerMajorScheduler(deps).run(TICKERS)
    assert [layer for layer, _ in log] == [layer for layer in LAYER_NAMES for _ in TICKERS]
    assert all(r["decision"] == "BUY" for r in results.values())
    assert deps.model_switches.cycle == len(LAYER_NAMES) - 1  # one load per layer, whatever the tickers


def test_ticker_major_switches_models_for_every_layer_of_every_ticker(tmp_path):
    deps, log, _ = scripted(tmp_path)
    decide_ticker_major(build_graph(deps), TICKERS, None)
    assert [layer for layer, _ in log] == list(LAYER_NAMES) * len(TICKERS)
    assert deps.model_switches.cycle == len(LAYER_NAMES) * len(TICKERS) - 1
    assert COUNTERS.get("model_switches_total") == deps.model_switches.cycle


def test_a_discarded_ticker_leaves_the_schedule_and_both_paths_agree(tmp_path):
    per_ticker = {"VALE3": {"technical": DISCARD["technical"]}, "ITUB4": {"sentiment": DISCARD["sentiment"]}}
    deps, log, _ = scripted(tmp_path / "lm", per_ticker)
    layer_major = LayerMajorScheduler(deps).run(TICKERS)
    assert ("risk", "VALE3") not in log and ("technical", "ITUB4") not in log
    assert [t for layer, t in log if layer == "final_score"] == ["PETR4"]
    deps2, _, _ = scripted(tmp_path / "tm", per_ticker)
    ticker_major = decide_ticker_major(build_graph(deps2), TICKERS, None)
    key = lambda r: (r["decision_id"], r["decision"], r["discarded_at"], r["reason"], r["confidence"])  # noqa: E731
    assert {t: key(r) for t, r in layer_major.items()} == {t: key(r) for t, r in ticker_major.items()}
    assert layer_major["VALE3"]["discarded_at"] == "technical" and layer_major["PETR4"]["decision"] == "BUY"


def test_tickers_run_concurrently_within_a_layer_up_to_the_host_limit(tmp_path):
    deps, log, live = scripted(tmp_path, delay_s=0.15, parallel=2)
    LayerMajorScheduler(deps).run(TICKERS)
    assert live[1] == 2  # never more than ollama.parallel in flight
    assert [layer for layer, _ in log] == [layer for layer in LAYER_NAMES for _ in TICKERS]


def test_decisions_are_made_one_at_a_time_and_acted_on_in_between(tmp_path):
    deps, _, _ = scripted(tmp_path)
    seen: list[str] = []
    blocked = set()

    def guard(ticker, decision_id):
        return "max open positions" if seen else None  # only the first BUY fits

    deps.guard = guard
    scheduler = LayerMajorScheduler(deps, on_record=lambda r: seen.append(r["ticker"]) if r["decision"] == "BUY"
                                    else blocked.add(r["ticker"]))
    results = scheduler.run(TICKERS)
    assert seen == ["PETR4"] and blocked == {"VALE3", "ITUB4"}
    assert "max open positions" in results["VALE3"]["reason"]


def test_a_stop_request_abandons_the_remaining_stages(tmp_path):
    deps, log, _ = scripted(tmp_path)
    stop = threading.Event()
    original = deps.model_factory

    def stopping_factory(layer, schema):
        if layer == "technical":
            stop.set()  # SIGTERM while the technical layer runs
        return original(layer, schema)

    deps.model_factory = stopping_factory
    results = LayerMajorScheduler(deps, stop=stop).run(TICKERS)
    assert results == {} and {layer for layer, _ in log} <= {"sentiment", "technical"}
    assert list(deps.sink.records()) == []


def test_paused_tickers_are_checkpointed_in_postgres_with_database_url(tmp_path, stores):
    from pydantic import SecretStr

    deps, _, _ = scripted(tmp_path)
    if stores.kind == "postgres":
        deps.settings = deps.settings.model_copy(update={"database_url": SecretStr(str(stores.new("checkpoints")))})
    scheduler = LayerMajorScheduler(deps)
    expected = "PostgresSaver" if stores.kind == "postgres" else "InMemorySaver"
    assert type(scheduler.checkpointer).__name__ == expected
    results = scheduler.run(TICKERS)
    assert [r["decision"] for r in results.values()] == ["BUY"] * len(TICKERS)
