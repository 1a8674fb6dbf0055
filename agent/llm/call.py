"""The one place where a layer's LLM is called: render the prompt, ask the model (through the
Ollama host pool when there is one, retrying transient failures), replay or fill the LLM cache,
and validate the answer. Every failure is raised as an ``LLMError`` for the layer to discard on.
"""

from __future__ import annotations

from typing import NamedTuple

import httpx
from langchain_core.messages import HumanMessage, SystemMessage
from loguru import logger

from agent.deps import CascadeDeps
from agent.errors import LLMError, LLMTransientError
from agent.layers.chart import ChartAttachment
from agent.layers.spec import LayerAnswer, LayerSpec
from agent.llm.cache import cache_key
from agent.llm.compact import answer_template, compact_json
from agent.llm.output import check_citations, parse_answer
from agent.llm.reply import Reply
from agent.ops.metrics import COUNTERS
from agent.state import CascadeState


def request_schema(spec: LayerSpec) -> dict:
    """The JSON schema sent to the model: the answer schema, with ``cited`` limited to real names."""
    schema = spec.answer.model_json_schema()
    if "cited" in schema.get("properties", {}):
        names = spec.citable_names() if spec.citable_names else []
        schema["properties"]["cited"] = {
            "type": "object",
            "properties": {name: {"type": "number"} for name in names},
            "additionalProperties": False,
            "description": "\"name\":value",
        }
    return schema


class Called(NamedTuple):
    """A layer's validated answer and how it was obtained."""

    answer: LayerAnswer
    flags: list[str]
    prompt_version: str
    cached: bool
    tokens_in: int | None
    tokens_out: int | None


def invoke(deps: CascadeDeps, spec: LayerSpec, schema: dict, system: str, user: str,
           images: list[str] | None = None) -> Reply:
    """Call the layer's model (through the Ollama host pool when there is one)."""
    if deps.host_pool is None:
        return invoke_on(deps, spec, schema, system, user, None, images)
    model_name = deps.settings.layers.model_for(spec.name)
    return deps.host_pool.call(model_name, lambda host: invoke_on(deps, spec, schema, system, user, host, images))


def human_message(user: str, images: list[str] | None) -> HumanMessage:
    """The user turn; PNGs (base64) ride along as image parts, which langchain-ollama sends as ``images``."""
    if not images:
        return HumanMessage(user)
    return HumanMessage(content=[{"type": "text", "text": user},
                                 *({"type": "image_url", "image_url": f"data:image/png;base64,{b64}"} for b64 in images)])


def invoke_on(deps: CascadeDeps, spec: LayerSpec, schema: dict, system: str, user: str, host: str | None,
              images: list[str] | None = None) -> Reply:
    """One call on one host, mapping every transport failure to an LLMError."""
    model = deps.model(spec.name, schema, host)
    deps.model_switches.observe(host or deps.llm_host, deps.provider.models.get(spec.name, spec.name))
    try:
        message = model.invoke([SystemMessage(system), human_message(user, images)])
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise LLMError("timeout", f"LLM call timed out: {exc or type(exc).__name__}") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, ConnectionError) as exc:  # refused, reset mid-reply
        raise LLMTransientError("connection", f"cannot reach the LLM: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any provider failure becomes a counted discard
        status = getattr(exc, "status_code", None)
        if status == 404:
            model_name = deps.provider.models.get(spec.name, "?")
            raise LLMError("model_missing", f"model {model_name} is not available: run `ollama pull {model_name}`") from exc
        raise LLMError("llm_error", f"{type(exc).__name__}: {exc}") from exc
    content = message.content
    if isinstance(content, list):
        content = "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    usage = getattr(message, "usage_metadata", None) or {}
    return Reply(str(content), usage.get("input_tokens"), usage.get("output_tokens"))


def _call_with_retries(deps: CascadeDeps, spec: LayerSpec, schema: dict, system: str, user: str, ticker: str,
                       images: list[str] | None = None) -> Reply:
    """The model's raw answer; connection errors are retried (llm.retries), anything else raises."""
    COUNTERS.inc("llm_calls_total", layer=spec.name)
    attempts = deps.settings.llm.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return invoke(deps, spec, schema, system, user, images)
        except LLMTransientError as exc:
            COUNTERS.inc("llm_retries_total", layer=spec.name)
            if attempt == attempts:
                raise
            logger.warning("{} {}: {} (attempt {}/{}), retrying", ticker, spec.name, exc, attempt, attempts)
            deps.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def chart_image(chart: ChartAttachment) -> str:
    """The chart's PNG as base64; a chart that cannot be drawn is this layer's failure (HOLD, with the reason)."""
    try:
        return chart.image_b64()
    except (OSError, ValueError, RuntimeError) as exc:
        raise LLMError("chart_error", f"the chart for the model could not be drawn: {type(exc).__name__}: {exc}") from exc


def model_identity(deps: CascadeDeps, layer: str) -> str:
    """The model as the LLM cache keys it: the name plus what makes the same name answer differently
    (Ollama: the pulled weights' digest, so a re-pull under the same tag is not replayed; embedded:
    its file's sha256, seed and context size, so another model file is asked afresh)."""
    name = deps.provider.models.get(layer, "?")
    digest = deps.provider.digests.get(layer)
    identity = f"{name}@{digest}" if digest else name
    if deps.provider.name == "embedded":
        e = deps.settings.embedded
        return f"{identity}|seed={e.seed}|n_ctx={e.n_ctx}"
    return identity


def render(spec: LayerSpec, state: CascadeState, deps: CascadeDeps) -> tuple[str, str, dict, str]:
    """(system, user, schema, prompt version): the layer's unchanging instructions and answer template first
    (the system message, a prefix llama.cpp reuses across calls), then the compact inputs."""
    ticker = state["ticker"]
    prompt = deps.prompts.get(spec.name, ticker)
    schema = request_schema(spec)
    system, user = prompt.render(
        ticker=ticker,
        bar_date=str((state.get("market") or {}).get("bar_date")),
        inputs_json=compact_json(spec.inputs(state)),
        schema_json=answer_template(schema),
    )
    return system, user, schema, prompt.version


def call_layer(spec: LayerSpec, state: CascadeState, deps: CascadeDeps, chart: ChartAttachment | None = None) -> Called:
    """Render the prompt, call the model (retrying transient failures), validate the answer and its consistency.
    ``chart``, when sent, goes with the prompt and into the cache key (by its digest). Only an answer that
    passes every check is cached.

    Raises LLMError on any failure, an answer that contradicts itself included (kind ``inconsistent``).
    """
    ticker = state["ticker"]
    system, user, schema, version = render(spec, state, deps)
    max_tokens = deps.settings.layers.max_tokens_for(spec.name, deps.settings.llm.max_tokens)
    cache, key = deps.llm_cache, None
    sent = chart is not None and chart.sent
    if cache is not None:
        model_name = model_identity(deps, spec.name)
        key = cache_key(provider=deps.provider.name, model=model_name, layer=spec.name, prompt_version=version,
                        system=system, user=user, schema=schema, temperature=deps.settings.llm.temperature,
                        max_tokens=max_tokens, image=chart.digest if sent else None)
    hit = cache.get(key, spec.name) if cache is not None else None
    reply = hit if hit is not None else _call_with_retries(deps, spec, schema, system, user, ticker,
                                                           [chart_image(chart)] if sent else None)
    try:
        answer = parse_answer(reply.text, spec.answer)
        problem = spec.consistency(answer, deps.settings) if spec.consistency else None
        if problem:
            raise LLMError("inconsistent", f"inconsistent answer: {problem}")
    except LLMError as exc:  # an invalid answer still cost its tokens: the record says how many
        if hit is not None:  # stored before answers were validated first (an older version): never replayed again
            cache.forget(key)
        exc.cached = hit is not None
        exc.tokens_in, exc.tokens_out = reply.tokens_in, reply.tokens_out
        raise
    if hit is None and cache is not None:  # only an answer that passed validation is worth replaying
        cache.put(key, reply, provider=deps.provider.name, model=model_name, layer=spec.name, prompt_version=version)
    flags = check_citations(getattr(answer, "cited", {}) or {}, spec.citable(state), deps.settings.llm.claim_tolerance) \
        if spec.citable else []
    return Called(answer, flags, version, hit is not None, reply.tokens_in, reply.tokens_out)
