"""The cascade as a LangGraph state machine. Read ``build_graph`` top to bottom: it is the flow.

    load_market_data -> compute_indicators -> compute_risk -> load_news   (tool nodes, plain code)
      -> sentiment -> technical -> risk -> data_validation -> final_score   (LLM layers)
      -> decide                                                         (record to the sink)

Any tool failure or layer discard jumps straight to ``decide``, which emits HOLD with the reason.
One-shot trace: ``python -m agent.graph --ticker PETR4``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph

from agent.cli import add_run_flags, exit_code, start
from agent.config import LAYER_NAMES, TICKER_RE, normalize_ticker
from agent.deps import CascadeDeps
from agent.errors import ConfigError, ProviderError
from agent.layers import LAYERS
from agent.layers.run import run_layer
from agent.nodes import (
    compute_indicators,
    compute_risk,
    decide,
    load_market_data,
    load_news,
)
from agent.state import CascadeState
from agent.trace import print_trace

# ------------------------------------------------------------------ routing

def route_after_tool(state: CascadeState) -> Literal["continue", "hold"]:
    """Did the tool node produce its snapshot, or must the cascade stop with HOLD?"""
    return "hold" if state.get("error") else "continue"


def route_after_layer(state: CascadeState) -> Literal["continue", "discard"]:
    """Did the layer that just ran pass the ticker on, or discard it?"""
    return "discard" if state.get("discarded_at") else "continue"


# ------------------------------------------------------------------ the graph

def build_graph(deps: CascadeDeps, checkpointer=None):
    """Compile the cascade. Nodes are plain ``state -> update`` functions bound to ``deps``.

    A checkpointer is only for the layer-major scheduler (agent/scheduler.py); Studio and the
    LangGraph server bring their own.
    """
    g = StateGraph(CascadeState)

    g.add_node("load_market_data", partial(load_market_data, deps=deps))
    g.add_node("compute_indicators", partial(compute_indicators, deps=deps))
    g.add_node("compute_risk", partial(compute_risk, deps=deps))
    g.add_node("load_news", partial(load_news, deps=deps))
    for name in LAYER_NAMES:
        g.add_node(name, partial(run_layer, LAYERS[name], deps=deps))
    g.add_node("decide", partial(decide, deps=deps))

    g.add_edge(START, "load_market_data")
    g.add_conditional_edges("load_market_data", route_after_tool, {"continue": "compute_indicators", "hold": "decide"})
    g.add_conditional_edges("compute_indicators", route_after_tool, {"continue": "compute_risk", "hold": "decide"})
    g.add_conditional_edges("compute_risk", route_after_tool, {"continue": "load_news", "hold": "decide"})
    g.add_edge("load_news", LAYER_NAMES[0])
    for layer, next_layer in zip(LAYER_NAMES, LAYER_NAMES[1:]):
        g.add_conditional_edges(layer, route_after_layer, {"continue": next_layer, "discard": "decide"})
    g.add_edge(LAYER_NAMES[-1], "decide")
    g.add_edge("decide", END)
    return g.compile(name="b3-cascade", checkpointer=checkpointer)


def initial_state(ticker: str, as_of: str | None = None, headlines: list[str] | None = None) -> CascadeState:
    return {"ticker": normalize_ticker(ticker), "as_of": as_of, "layers": [], "size_factor": 1.0,
            "headlines": headlines or []}


def run_cascade(graph, ticker: str, as_of: str | None = None, headlines: list[str] | None = None) -> dict[str, Any]:
    """Run one decision and return its record (the only channel read back: LangGraph reads the output
    channels after every step)."""
    return graph.invoke(initial_state(ticker, as_of, headlines), output_keys=["record"])["record"]


# ------------------------------------------------------------------ one-shot CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent.graph",
        description="Run the five-layer cascade once for one B3 ticker and print the trace and the decision.")
    p.add_argument("--ticker", required=True, help="B3 ticker, e.g. PETR4 (a .SA suffix is accepted)")
    add_run_flags(p)
    p.add_argument("--as-of", help="decide as of this date (YYYY-MM-DD): later bars are invisible")
    p.add_argument("--news-file", type=Path, help="local .jsonl/.csv of headlines for the sentiment layer")
    p.add_argument("--json", action="store_true", help="print only the decision record (JSON) on stdout")
    p.add_argument("--no-record", action="store_true", help="do not append the record to the log sink")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    try:
        if not TICKER_RE.match(normalize_ticker(args.ticker)):
            raise ConfigError(f"--ticker: {args.ticker!r} is not a B3 ticker (expected e.g. PETR4, VALE3)")
        if args.as_of:
            try:
                date.fromisoformat(args.as_of)
            except ValueError:
                raise ConfigError(f"--as-of: {args.as_of!r} is not a date (YYYY-MM-DD)") from None
        deps = start(args, {("news", "provider"): "file" if args.news_file else None, ("news", "file"): args.news_file},
                     sink=not args.no_record)
        record = run_cascade(build_graph(deps), args.ticker, as_of=args.as_of)
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)
    if args.json:
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        print_trace(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
