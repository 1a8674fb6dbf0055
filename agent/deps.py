"""What the graph's nodes need from the outside world, built once at start-up.

Tests swap any part (a fake model factory, a temporary sink, a fixed clock); the live loop,
the backtester and Studio build the same object from config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from langchain_core.language_models.chat_models import BaseChatModel

from agent.config import Settings
from agent.llm.cache import LLMCache
from agent.llm.host_pool import HostPool
from agent.llm.providers import (
    ModelFactory,
    ProviderChoice,
    make_model_factory,
    resolve_provider,
)
from agent.market.bars import MarketDataProvider
from agent.market.sources import make_market_provider
from agent.news.feeds import FileNewsProvider, NewsProvider, RssNewsProvider
from agent.news.headline import NewsBatch
from agent.ops.metrics import COUNTERS, ModelSwitches
from agent.prompts import PromptLibrary
from agent.store.jsonl import DecisionSink


@dataclass
class CascadeDeps:
    settings: Settings
    market: MarketDataProvider
    provider: ProviderChoice
    model_factory: ModelFactory
    prompts: PromptLibrary
    sink: DecisionSink | None
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    sleep: Callable[[float], None] = time.sleep
    news: NewsProvider | None = None
    guard: Callable[[str, str], str | None] | None = None  # (ticker, decision id) -> why a BUY is blocked
    origin: str = "one_shot"  # recorded in every record: loop | one_shot | studio | backtest
    llm_cache: LLMCache | None = None  # replayed LLM answers (backtests)
    model_switches: ModelSwitches = field(default_factory=ModelSwitches)
    host_pool: HostPool | None = None  # several Ollama hosts (ollama.hosts)
    _models: dict[str, BaseChatModel] = field(default_factory=dict, repr=False)
    _news_batches: dict[tuple[str, int], NewsBatch] = field(default_factory=dict, repr=False)

    @property
    def llm_host(self) -> str:
        """Where LLM calls go: the Ollama host, or the provider's name (embedded, fake...)."""
        return self.settings.ollama.host if self.provider.name == "ollama" else self.provider.name

    def model(self, layer: str, schema: dict, host: str | None = None) -> BaseChatModel:
        """The layer's chat model, per host in a pool (built once; the schema of a layer never changes)."""
        key = f"{layer}@{host}" if host else layer
        if key not in self._models:
            self._models[key] = (self.model_factory(layer, schema, host=host) if host
                                 else self.model_factory(layer, schema))
        return self._models[key]

    def news_batch(self, now: datetime) -> NewsBatch | None:
        """The news provider's headlines, fetched once per 5 minutes of ``now`` (shared by all tickers)."""
        if self.news is None:
            return None
        key = (self.news.name, int(now.timestamp() // 300))
        if key not in self._news_batches:
            self._news_batches.clear()
            self._news_batches[key] = self.news.collect(now)
        return self._news_batches[key]

    def defaults_in_use(self, data_source: str | None = None) -> list[str]:
        """Embedded defaults a decision depends on; every record carries this list."""
        tags = []
        if self.provider.name == "embedded":
            tags.append("llm:embedded")
        if (data_source or getattr(self.market, "name", "")) == "sim":
            tags.append("market:sim")
        return tags


def make_news_provider(settings: Settings) -> NewsProvider | None:
    n = settings.news
    if n.provider == "file":
        return FileNewsProvider(n.file)
    if n.provider == "rss":
        return RssNewsProvider(list(n.feeds), n.timeout_s)
    return None


def build_deps(
    settings: Settings,
    *,
    provider: str | None = None,
    source: str | None = None,
    data_dir: Path | None = None,
    sink: DecisionSink | None | bool = True,
) -> CascadeDeps:
    """Wire the real parts from config. ``sink=True`` means the JSONL sink under LOG_DIR."""
    choice = resolve_provider(settings, provider)
    for layer, model in choice.models.items():  # Prometheus names the model each layer asks
        COUNTERS.set_gauge("llm_model_info", 1, layer=layer, model=model, provider=choice.name)
    pool = None
    if choice.name == "ollama" and settings.ollama.hosts:
        o = settings.ollama
        pool = HostPool(list(o.hosts), o.parallel, o.probe_timeout_s, o.retry_after_s, wait_s=o.timeout_s)
    return CascadeDeps(
        host_pool=pool,
        settings=settings,
        market=make_market_provider(settings, source, data_dir),
        provider=choice,
        model_factory=make_model_factory(choice, settings),
        prompts=PromptLibrary(),
        news=make_news_provider(settings),
        sink=DecisionSink(settings.logging.dir, fsync=settings.logging.fsync) if sink is True else (sink or None),
    )
