"""Running one layer as a graph node: the precheck, then the LLM (or the quant rule), then the gate.

Any LLM failure becomes a discard with its kind and reason, counted; a layer can only discard or
shrink the position (the risk layer's ``size_factor``), never turn a failure into a pass. What an
answer puts into the record (reasons, citation flags) is bounded by agent.record, cuts counted.
"""

from __future__ import annotations

import time
from typing import Any

from agent.deps import CascadeDeps
from agent.errors import LLMError
from agent.layers.chart import attach_chart
from agent.layers.risk import RiskAnswer
from agent.layers.spec import QUANT_PROVIDER, RULES_VERSION, LayerSpec
from agent.llm.call import Called, call_layer
from agent.ops.logs import perf_log
from agent.ops.metrics import COUNTERS
from agent.record import MAX_REASON_CHARS, bounded, bounded_flags
from agent.state import CascadeState, LayerResult


def run_layer(spec: LayerSpec, state: CascadeState, deps: CascadeDeps) -> dict[str, Any]:
    """Run one layer and return the partial state update (a plain node body)."""
    started = time.perf_counter()
    elapsed = lambda: round((time.perf_counter() - started) * 1000.0, 1)  # noqa: E731
    model_name = deps.provider.models.get(spec.name, "?")
    think = deps.settings.layers.think_for(spec.name) if deps.provider.name == "ollama" else None
    update: dict[str, Any] = {}

    ruled = spec.precheck(state, deps.settings) if spec.precheck else None
    chart = attach_chart(state, deps, spec.name) if spec.chart and ruled is None \
        and deps.provider.name != QUANT_PROVIDER else None
    image = chart.note() if chart is not None else None
    if ruled is not None:
        result = LayerResult(layer=spec.name, model="rules", provider="code", score=None, passed=ruled.passed,
                             reason=ruled.reason, latency_ms=elapsed())
    else:
        try:
            if deps.provider.name == QUANT_PROVIDER:
                called = Called(spec.quant(state, deps.settings), [], RULES_VERSION, False, None, None)
            else:
                called = call_layer(spec, state, deps, chart)
            answer, flags, version, cached = called.answer, called.flags, called.prompt_version, called.cached
        except LLMError as exc:
            COUNTERS.inc("llm_invalid_outputs_total", layer=spec.name, kind=exc.kind)
            result = LayerResult(layer=spec.name, model=model_name, provider=deps.provider.name, score=None,
                                 passed=False, reason=bounded(f"LLM failure ({exc.kind}): {exc}", MAX_REASON_CHARS,
                                                              "reason"), latency_ms=elapsed(),
                                 error=exc.kind, prompt_version=deps.prompts.get(spec.name, state["ticker"]).version,
                                 cached=exc.cached, image=image, think=think,
                                 tokens_in=getattr(exc, "tokens_in", None), tokens_out=getattr(exc, "tokens_out", None))
        else:
            gate = spec.gate(answer, deps.settings)
            passed, reason = gate.passed, gate.reason
            if flags:
                COUNTERS.inc("llm_claim_mismatches_total", amount=len(flags), layer=spec.name)
                if deps.settings.llm.on_claim_mismatch == "discard" and passed:
                    passed, reason = False, f"misquoted the computed values ({'; '.join(flags)}); {reason}"
            result = LayerResult(layer=spec.name, model=model_name, provider=deps.provider.name,
                                 score=answer.recorded_score(),
                                 passed=passed, reason=bounded(reason, MAX_REASON_CHARS, "reason"),
                                 latency_ms=elapsed(), flags=bounded_flags(flags),
                                 prompt_version=version, output=answer.model_dump(mode="json"), cached=cached,
                                 tokens_in=called.tokens_in, tokens_out=called.tokens_out, think=think, image=image)
            if isinstance(answer, RiskAnswer) and passed:
                update["size_factor"] = min(state.get("size_factor", 1.0), answer.size_factor)
    outcome = "pass" if result.passed else "discard"
    COUNTERS.inc("layer_results_total", layer=spec.name, outcome=outcome)
    COUNTERS.observe("layer_latency_seconds", result.latency_ms / 1000.0, layer=spec.name, model=result.model)
    for direction, count in (("in", result.tokens_in), ("out", result.tokens_out)):
        if count and not result.cached:
            COUNTERS.inc("llm_tokens_total", amount=count, layer=spec.name, model=result.model, direction=direction)
    perf_log().info("layer ticker={} layer={} model={} provider={} outcome={} latency_ms={:.1f} tokens_in={} "
                    "tokens_out={} cached={}", state["ticker"], spec.name, result.model, result.provider, outcome,
                    result.latency_ms, result.tokens_in, result.tokens_out, result.cached)
    update["layers"] = [result.model_dump(mode="json")]
    if not result.passed:
        update["discarded_at"] = spec.name
    return update
