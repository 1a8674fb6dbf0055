"""What every cascade layer is made of, and the views of the state the layers share.

A layer is a ``LayerSpec``: its answer schema, the inputs it sees, a deterministic precheck that
can rule before (instead of) the LLM, the gate that turns a validated answer into pass or discard,
the computed values its answer may cite, and the deterministic rule that stands in for the LLM in
``quant`` mode. A gate never turns a failure into a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from agent.state import CascadeState

if TYPE_CHECKING:
    from agent.config import Settings

QUANT_PROVIDER = "quant"
RULES_VERSION = "quant-rules-v1"

Score = Field(ge=0.0, le=1.0, description="0.0 to 1.0")
# The reason comes last and stays short: on a CPU host every answer token costs ~0.1 s (docs/cascade.md).
Reason = Field(min_length=1, max_length=400, description="at most 15 words")
Cited = Field(default_factory=dict, max_length=40, description='"name":value, at most 3, copied from the input')


class LayerAnswer(BaseModel):
    """A layer's validated answer. Strict: an LLM's ``true`` must not become a score of 1.0, nor
    ``"yes"`` an approval. Subclass names are part of the LLM cache key (the schema's title)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    def recorded_score(self) -> float | None:
        """The score this answer puts in the record and shows later layers (the risk layer's is its safety)."""
        return getattr(self, "score", None)


@dataclass(frozen=True)
class Gate:
    passed: bool
    reason: str


@dataclass(frozen=True)
class LayerSpec:
    """One cascade layer. ``precheck`` is deterministic and runs before (instead of) the LLM."""

    name: str
    answer: type[LayerAnswer]
    inputs: Callable[[CascadeState], dict[str, Any]]
    gate: Callable[[Any, "Settings"], Gate]
    quant: Callable[[CascadeState, "Settings"], LayerAnswer]
    precheck: Callable[[CascadeState, "Settings"], Gate | None] | None = None
    citable: Callable[[CascadeState], dict[str, float]] | None = None
    citable_names: Callable[[], list[str]] | None = None
    chart: bool = False  # shown the decision's chart when its model takes images (layers/chart.py)
    # A validated answer that contradicts itself (``positive`` with score 0.0): why, or None. Invalid, never gated.
    consistency: Callable[[Any, "Settings"], str | None] | None = None


def label_score_problem(field: str, label: str, score: float, up: str, down: str) -> str | None:
    """A label and its score must agree: ``up`` above 0.5, ``down`` below 0.5, anything else within 0.3-0.7."""
    if label == up and score <= 0.5:
        return f"{field} {up!r} with score {score:.2f} (a {up} answer scores above 0.5)"
    if label == down and score >= 0.5:
        return f"{field} {down!r} with score {score:.2f} (a {down} answer scores below 0.5)"
    if label not in (up, down) and not 0.3 <= score <= 0.7:
        return f"{field} {label!r} with score {score:.2f} (a {label} answer scores between 0.3 and 0.7)"
    return None


# ---------------------------------------------------------------- shared views of the state

def indicators_view(state: CascadeState) -> dict[str, Any]:
    return {k: v for k, v in (state.get("indicators") or {}).items() if k != "bar_date"}


def risk_view(state: CascadeState) -> dict[str, Any]:
    return {k: v for k, v in (state.get("risk") or {}).items() if k != "blocks"}


def pick(view: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The named entries of a view, in that order: a later layer sees what it judges, in fewer tokens."""
    return {k: view[k] for k in keys if k in view}


def verdicts(state: CascadeState) -> dict[str, str]:
    """Each earlier layer as ``"0.85: <its model's own reason>"``: the answer's short reason, not the gate's
    sentence around it, which repeats the score and the threshold (tokens a later layer pays for)."""
    out = {}
    for r in state.get("layers", []):
        reason = (r.get("output") or {}).get("reason") or r["reason"]
        out[r["layer"]] = reason if r["score"] is None else f"{r['score']}: {reason}"  # None: code decided
    return out


def _numbers(view: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in view.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def indicator_values(state: CascadeState) -> dict[str, float]:
    return _numbers(indicators_view(state))


def risk_values(state: CascadeState) -> dict[str, float]:
    return _numbers(risk_view(state))


def move_words(change: float) -> str:
    """``up 16.8%``: small models misread a sign (they call "+16.8%" a decline); a word they do not."""
    if abs(change) < 0.0005:
        return "flat"
    return f"{'up' if change > 0 else 'down'} {abs(change):.1%}"


def distance(level: Any, entry: Any) -> str | None:
    """A level as a signed distance from the entry (``-4.0%``), or None when either is not a usable number."""
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (level, entry))
    return f"{level / entry - 1:+.1%}" if ok and entry > 0 else None


def indicator(state: CascadeState, key: str) -> Any:
    return (state.get("indicators") or {}).get(key)
