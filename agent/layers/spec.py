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
Reason = Field(min_length=1, max_length=600, description="one or two sentences")
Cited = Field(default_factory=dict, max_length=40, description="indicator values you relied on, copied from the input")


class LayerAnswer(BaseModel):
    """A layer's validated answer. Strict: an LLM's ``true`` must not become a score of 1.0, nor
    ``"yes"`` an approval. Subclass names are part of the LLM cache key (the schema's title)."""

    model_config = ConfigDict(extra="ignore", strict=True)


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


# ---------------------------------------------------------------- shared views of the state

def indicators_view(state: CascadeState) -> dict[str, Any]:
    return {k: v for k, v in (state.get("indicators") or {}).items() if k != "bar_date"}


def risk_view(state: CascadeState) -> dict[str, Any]:
    return {k: v for k, v in (state.get("risk") or {}).items() if k != "blocks"}


def verdicts(state: CascadeState) -> list[dict[str, Any]]:
    return [{"layer": r["layer"], "score": r["score"], "reason": r["reason"]} for r in state.get("layers", [])]


def _numbers(view: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in view.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def indicator_values(state: CascadeState) -> dict[str, float]:
    return _numbers(indicators_view(state))


def risk_values(state: CascadeState) -> dict[str, float]:
    return _numbers(risk_view(state))


def indicator(state: CascadeState, key: str) -> Any:
    return (state.get("indicators") or {}).get(key)
