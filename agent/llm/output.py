"""LLM output is untrusted: strip reasoning, extract one JSON object, validate it with pydantic,
and check every number it quotes against what the tools computed.
The answer schemas live with their layers (agent/layers/); the same class is sent to the model
(Ollama ``format``, llama.cpp ``response_format``) and validates its answer.
"""

from __future__ import annotations

import json
import math
import re

from pydantic import BaseModel, ValidationError

from agent.errors import LLMError, validation_problems
from agent.ops.metrics import COUNTERS

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
UNCLOSED_THINK = re.compile(r"<think>.*", re.DOTALL | re.IGNORECASE)
FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
# The longest answer read. max_tokens (at most 8192) keeps a real model's answer, reasoning included, far
# below it; anything longer is a broken model or a hostile server, refused unread.
MAX_ANSWER_CHARS = 200_000
ERRORS_QUOTED = 4
# An answer cut by max_tokens inside its last field, the reason (complete escapes only), or just after it:
# the reason closed, the object not
CUT_REASON = re.compile(r'^\s*\{.*"reason"\s*:\s*"(?:[^"\\]|\\.)*(?P<closed>"\s*)?$', re.DOTALL)
CUT_MARK = "..."
# A fence opened before the answer, never closed because max_tokens cut the answer first
OPEN_FENCE = re.compile(r"^\s*```(?:json)?\s*", re.IGNORECASE)

def strip_reasoning(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (and a trailing unclosed one) that reasoning models emit."""
    text = THINK_BLOCK.sub("", text)
    return UNCLOSED_THINK.sub("", text).strip()


def extract_json_object(text: str) -> dict:
    """The first complete JSON object in the text (bare, or inside a ``` fence)."""
    cleaned = strip_reasoning(text)
    if not cleaned:
        raise LLMError("empty_output", "the model returned no answer (only reasoning or nothing)")
    candidates = [m.group(1) for m in FENCE.finditer(cleaned)] + [cleaned]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        start = candidate.find("{")
        while start != -1:
            try:
                obj, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                start = candidate.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return obj
            start = candidate.find("{", start + 1)
    excerpt = cleaned[:120].replace("\n", " ")
    raise LLMError("invalid_json", f"the answer is not a JSON object: {excerpt!r}")


def close_cut_reason(text: str) -> str | None:
    """The answer closed after its reason, when max_tokens cut it there; None when it was cut elsewhere.

    The schemas put the decision fields first and the reason last, so an answer cut inside its reason
    has already decided: the reason is kept as far as it goes, marked with ``...`` (whole, when only the
    closing brace was cut). A model that opens a
    ```json fence (and pretty-prints) is cut the same way, before it closes the fence.
    """
    cleaned = OPEN_FENCE.sub("", strip_reasoning(text), count=1)
    cut = CUT_REASON.match(cleaned)
    if cut is None:
        return None
    return cleaned + "}" if cut.group("closed") else cleaned + CUT_MARK + '"}'


def parse_answer(text: str, schema: type[BaseModel]) -> BaseModel:
    """Validate the model's text against the layer's schema; raise LLMError with the specific problem."""
    if len(text) > MAX_ANSWER_CHARS:
        raise LLMError("oversized", f"the answer is {len(text):,} characters long, over {MAX_ANSWER_CHARS:,}: not read")
    try:
        try:
            obj = extract_json_object(text)
        except LLMError:
            closed = close_cut_reason(text)
            if closed is None:
                raise
            obj = extract_json_object(closed)
        _reject_non_finite(obj)
    except RecursionError:  # both recurse once per nesting level
        raise LLMError("invalid_json", "the answer nests JSON too deeply to be a layer's answer") from None
    try:
        return schema.model_validate(obj)
    except ValidationError as exc:
        # the reason quotes the bad values clipped: each clip counted like any cut of a record
        problems = "; ".join(validation_problems(
            exc, limit=ERRORS_QUOTED, label=lambda loc: ".".join(str(p) for p in loc) or "answer",
            on_clip=lambda: COUNTERS.inc("record_truncations_total", field="echoed_input")))
        kind = "out_of_range" if any(e["type"] in ("less_than_equal", "greater_than_equal") for e in exc.errors()) else "schema_mismatch"
        raise LLMError(kind, f"invalid answer: {problems}") from None


def _reject_non_finite(obj: object) -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise LLMError("out_of_range", "the answer contains NaN or Infinity")
    if isinstance(obj, dict):
        for v in obj.values():
            _reject_non_finite(v)
    elif isinstance(obj, list):
        for v in obj:
            _reject_non_finite(v)


def check_citations(cited: dict[str, float], computed: dict[str, float], tolerance: float) -> list[str]:
    """Compare values the model quoted with the computed snapshot. Returns one flag per mismatch.

    A name that was not computed is a claim about nothing the model was shown: also flagged.
    """
    flags = []
    for name, claimed in cited.items():
        key = name.strip().lower()
        if key not in computed:
            flags.append(f"cited unknown value {name!r}={claimed}")
            continue
        actual = computed[key]
        if not math.isfinite(claimed):
            flags.append(f"cited {key}={claimed}, computed {actual:.4g}")
            continue
        scale = max(abs(actual), 1e-9)
        if abs(claimed - actual) / scale > tolerance and abs(claimed - actual) > 1e-6:
            flags.append(f"cited {key}={claimed:.4g}, computed {actual:.4g}")
    return flags
