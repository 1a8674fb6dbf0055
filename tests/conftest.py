"""Shared test helpers: settings from defaults, fake chat models per layer, and cascade deps."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.config import LAYER_NAMES, Settings, load_settings
from agent.deps import CascadeDeps
from agent.eval.passing import LOOSE_RISK, PASS
from agent.llm.providers import ProviderChoice
from agent.market.sim import SimProvider
from agent.ops.metrics import COUNTERS
from agent.prompts import PromptLibrary
from agent.store.jsonl import DecisionSink

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DAILY_DIR = SHARED_DATA / "b3" / "daily"
AS_OF = "2025-06-30"
FIXED_NOW = datetime(2025, 6, 30, 21, 0, tzinfo=timezone.utc)

# Answers that each layer's gate discards.
DISCARD: dict[str, dict[str, Any]] = {
    "sentiment": {"sentiment": "negative", "score": 0.3, "reason": "bad news"},
    "technical": {"trend": "bearish", "score": 0.2, "reason": "downtrend"},
    "risk": {"approve": False, "risk": 0.9, "size_factor": 0.0, "reason": "too volatile"},
    "data_validation": {"valid": False, "score": 0.2, "issues": ["gap"], "reason": "gap in bars"},
    "final_score": {"score": 0.5, "reason": "not convinced"},
}


def make_settings(overrides: dict[tuple[str, ...], Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from config.yaml alone: no .env and no process environment leak into tests."""
    return load_settings(env_file=None, environ=environ or {}, overrides=overrides)


class PromptReadingChatModel(BaseChatModel):
    """A fake chat model whose answer is a function of the prompt it reads; every prompt is kept in ``prompts``."""

    answer: Callable[[str], str]
    prompts: list = []

    @property
    def _llm_type(self) -> str:
        return "prompt-reading-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        self.prompts.append(prompt)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.answer(prompt)))])


class RaisingChatModel(BaseChatModel):
    """A fake chat model whose call fails, as a dead or slow Ollama would."""

    error: Exception

    @property
    def _llm_type(self) -> str:
        return "raising-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        raise self.error


class FakeFactory:
    """Per-layer fake models. ``answers[layer]`` is a dict (sent as JSON), a raw string or an exception.

    Records which layers were asked, and the schemas they were given.
    """

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.calls: list[str] = []
        self.schemas: dict[str, dict] = {}

    def __call__(self, layer: str, schema: dict) -> BaseChatModel:
        self.schemas[layer] = schema
        answer = self.answers[layer]
        factory = self

        if isinstance(answer, Exception):
            model = RaisingChatModel(error=answer)
        else:
            text = answer if isinstance(answer, str) else json.dumps(answer)
            model = GenericFakeChatModel(messages=iter([AIMessage(content=text)] * 50))
        original = model.invoke

        def invoke(*args, **kwargs):
            factory.calls.append(layer)
            return original(*args, **kwargs)

        object.__setattr__(model, "invoke", invoke)
        return model


def make_deps(tmp_path: Path, answers: dict[str, Any] | None = None, settings: Settings | None = None,
              market=None, factory: FakeFactory | None = None) -> CascadeDeps:
    settings = settings or make_settings(LOOSE_RISK)
    factory = factory or FakeFactory({**PASS, **(answers or {})})
    return CascadeDeps(
        settings=settings,
        market=market or SimProvider(seed=settings.market.sim_seed),
        provider=ProviderChoice("fake", "tests", {layer: f"fake-{layer}" for layer in LAYER_NAMES}),
        model_factory=factory,
        prompts=PromptLibrary(),
        sink=DecisionSink(tmp_path / "logs"),
        clock=lambda: FIXED_NOW,
        sleep=lambda s: None,
    )


@pytest.fixture(autouse=True)
def _fresh_counters():
    COUNTERS.reset()
    yield


def load_daily(ticker: str) -> pd.DataFrame:
    """Daily bars of ``ticker`` from the shared data set, lower-case columns, indexed by date."""
    if not DAILY_DIR.is_dir():
        pytest.skip(f"shared B3 daily data not found at {DAILY_DIR}")
    bars = pd.read_csv(DAILY_DIR / f"{ticker}.csv", parse_dates=["Date"], index_col="Date")
    bars.columns = [c.lower() for c in bars.columns]
    return bars


def require_shared_data() -> Path:
    if not DAILY_DIR.is_dir():
        pytest.skip(f"reference data not found at {DAILY_DIR}")
    return DAILY_DIR


# ---------------------------------------------------------------- the two stores: SQLite and Postgres

PG_TEST_URL = os.environ.get("B3_TEST_DATABASE_URL")


class Stores:
    """Fresh stores for one test: a SQLite file, or a new Postgres schema on B3_TEST_DATABASE_URL."""

    def __init__(self, kind: str, tmp_path: Path):
        self.kind, self.tmp_path, self.schemas = kind, tmp_path, []
        self._made: dict[str, Path | str] = {}

    def new(self, name: str = "ledger") -> Path | str:
        """The store called ``name`` (the same one when asked again: a restart reopens it)."""
        if name not in self._made:
            self._made[name] = self._create(name)
        return self._made[name]

    def _create(self, name: str) -> Path | str:
        if self.kind == "sqlite":
            return self.tmp_path / f"{name}.db"
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_TEST_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        self.schemas.append(schema)
        sep = "&" if "?" in PG_TEST_URL else "?"
        return f"{PG_TEST_URL}{sep}options=-c%20search_path%3D{schema}"

    def drop(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(PG_TEST_URL, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    """Runs a test on SQLite and on Postgres. CI provides Postgres (B3_TEST_DATABASE_URL) and must not skip it."""
    if request.param == "postgres" and not PG_TEST_URL:
        if os.environ.get("CI"):
            pytest.fail("CI runs the store tests on Postgres: set B3_TEST_DATABASE_URL (see .ci/run)")
        pytest.skip("B3_TEST_DATABASE_URL is not set (CI sets it to a local Postgres)")
    s = Stores(request.param, tmp_path)
    yield s
    s.drop()
