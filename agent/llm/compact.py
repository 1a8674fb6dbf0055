"""What a layer's prompt costs in tokens: compact inputs and a one-line answer template.

On a CPU host every prompt token is paid before the first answer token (about 40 tokens/s for a
1.5B model on 2 cores), and Qwen's tokenizer spends one token per digit. So inputs go as
compact JSON with numbers cut to 3 significant digits, and the answer's schema is shown as a
one-line template in field order (decision fields first, the reason bounded), not as a JSON
Schema document. The JSON Schema itself still constrains and validates the answer.
"""

from __future__ import annotations

import json
import math
from typing import Any

SIGNIFICANT = 3


def round_numbers(value: Any, digits: int = SIGNIFICANT) -> Any:
    """Floats cut to ``digits`` significant digits, recursively; other values unchanged."""
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0.0:
            return value
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: round_numbers(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_numbers(v, digits) for v in value]
    return value


def compact_json(value: Any) -> str:
    """One line, no spaces, numbers rounded: what the model reads of the inputs."""
    return json.dumps(round_numbers(value), separators=(",", ":"), ensure_ascii=False, default=str)


def _field(schema: dict, prop: dict) -> str:
    if "enum" in prop:
        return "|".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    kind = prop.get("type")
    if kind == "number":
        low, high = prop.get("minimum"), prop.get("maximum")
        # The bounds alone: what a score means is the prompt's to say, once (a description here repeated it).
        return f"<number {low:g} to {high:g}>" if low is not None and high is not None else "<number>"
    if kind == "boolean":
        return "true|false"
    if kind == "string":
        return f'"<{prop.get("description") or "text"}>"'
    if kind == "array":
        return '["..."]'
    if kind == "object":
        return "{" + (prop.get("description") or "") + "}"
    if "$ref" in prop:
        ref = prop["$ref"].rsplit("/", 1)[-1]
        return _field(schema, (schema.get("$defs") or {}).get(ref, {}))
    return "value"


# Optional fields the template leaves out: small models copy a template's placeholders literally, and a
# citation is allowed, and checked, but not asked for.
OPTIONAL_UNSHOWN = ("cited",)


def answer_template(schema: dict) -> str:
    """``{"score":<number 0 to 1>,"sentiment":"positive"|"neutral"|"negative","reason":"<...>"}``, in field order."""
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in OPTIONAL_UNSHOWN}
    return "{" + ",".join(f"{json.dumps(name)}:{_field(schema, prop)}" for name, prop in props.items()) + "}"
