"""Layer 5 sees a chart when its model takes images (the guide's multimodal final layer), against the
Ollama stub: the PNG of the decision's own bars in Ollama's ``images`` field, saved and linked from the
record; a text-only model gets no image and the record says why; replays from the LLM cache stay exact."""

from __future__ import annotations

import base64
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from agent.config import ENV_KEYS, LAYER_NAMES, Settings, load_settings
from agent.dashboard.app import create_app
from agent.deps import CascadeDeps
from agent.eval.ollama_stub import OllamaStub
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph, run_cascade
from agent.layers.chart import (
    CHART_BARS,
    HEIGHT_PX,
    WIDTH_PX,
    ChartPlan,
    plan_chart,
    render_png,
    vision_note,
)
from agent.llm.cache import LLMCache
from agent.llm.providers import make_model_factory, resolve_provider
from agent.market.sim import SimProvider
from agent.prompts import PromptLibrary
from agent.store.jsonl import DecisionSink
from tests.conftest import AS_OF, FIXED_NOW

MODELS = {"sentiment": "smollm2:1.7b", "technical": "mistral:7b", "risk": "deepseek-r1:8b",
          "data_validation": "qwen2.5-coder:7b", "final_score": "gemma3:4b"}
MODEL_ENV = {path[1]: env for env, path in ENV_KEYS.items() if path[0] == "layers" and path[-1] == "model"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def stub_settings(host: str) -> Settings:
    environ = {"OLLAMA_HOST": host, **{MODEL_ENV[layer]: model for layer, model in MODELS.items()}}
    return load_settings(env_file=None, environ=environ,
                         overrides={**LOOSE_RISK, ("llm", "retries"): 0, ("ollama", "probe_timeout_s"): 1.0})


def stub(vision: bool) -> OllamaStub:
    running = OllamaStub(models=MODELS.values(), content={MODELS[k]: json.dumps(PASS[k]) for k in LAYER_NAMES})
    if vision:
        running.capabilities[MODELS["final_score"]] = ["completion", "vision"]
    return running


def deps_for(settings: Settings, tmp_path: Path, cache: LLMCache | None = None) -> CascadeDeps:
    choice = resolve_provider(settings, "ollama")  # asks /api/show whether layer 5's model takes images
    return CascadeDeps(settings=settings, market=SimProvider(seed=settings.market.sim_seed), provider=choice,
                       model_factory=make_model_factory(choice, settings), prompts=PromptLibrary(),
                       sink=DecisionSink(tmp_path), clock=lambda: FIXED_NOW, sleep=lambda s: None, llm_cache=cache)


def final_layer(record: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in record["layers"] if r["layer"] == "final_score")


def requests_of(running: OllamaStub, model: str) -> list[dict[str, Any]]:
    return [r for r in running.requests if r["model"] == model]


def test_vision_model_gets_a_png_of_the_decisions_own_bars(tmp_path):
    with stub(vision=True) as running:
        settings = stub_settings(running.url)
        deps = deps_for(settings, tmp_path)
        assert deps.provider.vision == frozenset({"final_score"})
        record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)

    [final_request] = requests_of(running, MODELS["final_score"])
    [image] = final_request["messages"][-1]["images"]
    png = base64.b64decode(image)
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG" and picture.size == (WIDTH_PX, HEIGHT_PX)
    for layer in LAYER_NAMES[:-1]:  # only layer 5 gets the chart
        assert all("images" not in m for r in requests_of(running, MODELS[layer]) for m in r["messages"])

    # the bars drawn are the decision's: the same window the market gave this decision, ending on its bar
    note = final_layer(record)["image"]
    assert note["sent"] is True and note["last_bar"] == record["bar_date"] and note["bars"] == CHART_BARS
    bars = SimProvider(seed=settings.market.sim_seed).get_bars("PETR4", "1d", end=date.fromisoformat(AS_OF),
                                                               lookback=settings.market.lookback_bars)
    dates = [str(d.date()) for d in bars.frame.index]
    assert note["first_bar"] == dates[-CHART_BARS] and dates[-1] == record["bar_date"]
    # saved beside the records, linked from the record, byte for byte what the model got
    assert (tmp_path / note["file"]).read_bytes() == png
    assert note["file"].startswith(f"charts/{record['bar_date'][:7]}/PETR4-{record['bar_date']}-")


def test_text_only_model_gets_no_image_and_the_record_says_why(tmp_path):
    with stub(vision=False) as running:
        deps = deps_for(stub_settings(running.url), tmp_path)
        assert deps.provider.vision == frozenset()
        record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    assert all("images" not in m for r in running.requests for m in r["messages"])
    note = final_layer(record)["image"]
    assert note == {"sent": False, "reason": "gemma3:4b has no vision capability (Ollama /api/show): text prompt"}
    assert not (tmp_path / "charts").exists()
    assert dashboard(deps.settings, tmp_path).get(f"/api/decisions/{record['decision_id']}/chart").status_code == 404


def dashboard(settings: Settings, log_dir: Path) -> TestClient:
    """The dashboard over the records (and charts) under ``log_dir``."""
    shown = settings.model_copy(update={"logging": settings.logging.model_copy(update={"dir": log_dir}),
                                        "database_path": log_dir / "agent.db"})
    return TestClient(create_app(shown, clock=lambda: FIXED_NOW), base_url="http://127.0.0.1:8050")


def test_the_dashboard_serves_the_chart_of_a_decision(tmp_path):
    with stub(vision=True) as running:
        deps = deps_for(stub_settings(running.url), tmp_path)
        record = run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)
    client = dashboard(deps.settings, tmp_path)
    reply = client.get(f"/api/decisions/{record['decision_id']}/chart")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content == (tmp_path / final_layer(record)["image"]["file"]).read_bytes()
    detail = client.get(f"/api/decisions/{record['decision_id']}").json()["record"]
    assert final_layer(detail)["image"]["file"] == final_layer(record)["image"]["file"]
    assert client.get("/api/decisions/PETR4-2025-06-30-000000000000/chart").status_code == 404


def test_embedded_model_is_text_only():
    class Provider:
        name, vision, models = "embedded", frozenset(), {}

    class Deps:
        provider = Provider()

    assert vision_note(Deps(), "final_score") == "the embedded model is text-only: text prompt"


def test_replay_from_the_cache_needs_the_same_chart(tmp_path):
    with stub(vision=True) as running:
        settings = stub_settings(running.url)
        cache = LLMCache(tmp_path / "cache.db")
        first = run_cascade(build_graph(deps_for(settings, tmp_path, cache)), "PETR4", as_of=AS_OF)
        asked = len(running.requests)
        again = run_cascade(build_graph(deps_for(settings, tmp_path, cache)), "PETR4", as_of=AS_OF)
        assert len(running.requests) == asked  # the same chart and prompt: every layer replayed
        assert final_layer(again)["cached"] is True and final_layer(again)["image"] == final_layer(first)["image"]
        cache.close()


def test_a_different_chart_is_a_different_question():
    bars = {"date": [f"2025-01-{d:02d}" for d in range(1, 31)], "open": [10.0] * 30, "high": [11.0] * 30,
            "low": [9.0] * 30, "close": [10.5] * 30, "volume": [1e6] * 30}
    plan = ChartPlan("PETR4", bars, ("sma_20",), {})
    moved = ChartPlan("PETR4", {**bars, "close": [10.5] * 29 + [10.6]}, ("sma_20",), {})
    other_lines = ChartPlan("PETR4", bars, ("rsi",), {})
    assert len({plan.digest, moved.digest, other_lines.digest}) == 3
    assert render_png(plan) == render_png(ChartPlan("PETR4", dict(bars), ("sma_20",), {}))  # deterministic bytes


def test_plan_draws_the_indicators_the_technical_layer_cited():
    state = {"ticker": "PETR4", "market": {"bars": {"date": ["2025-01-02"], "open": [1.0], "high": [1.0],
                                                    "low": [1.0], "close": [1.0], "volume": [1.0]}},
             "layers": [{"layer": "technical", "output": {"cited": {"rsi": 55.0, "adx": 20.0, "bb_upper": 2.0}}}],
             "risk": {"stop": 0.9, "entry": 1.0, "take_profit": 1.2, "shares": 100}}
    plan = plan_chart(state)
    assert plan.indicators == ("rsi", "bb_upper")  # adx is not drawn
    assert plan.levels == {"stop": 0.9, "entry": 1.0, "take_profit": 1.2}
