"""``make bench``: the embedded cascade against the speed bars of issue 13, per profile, on real bars.

Every layer is called on the same real states (``../shared/data/b3/daily``, as of a fixed day): the
first ticker warms each layer's context (model load and instruction prefix), the others are timed
twice, with the prefix kept (llama.cpp evaluates only the new tail) and with the KV cache cleared
before each call (the whole prompt again): the difference is what prefix reuse saves. Then one real
decision per ticker gives the LLM calls per decision (the cascade stops at the first discard).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from agent.config import LAYER_NAMES, load_settings
from agent.eval.dataset import DAILY_BARS

DAILY_DIR = DAILY_BARS
AS_OF = "2025-06-30"
BARS = {"default_path_s": 40.0, "fastest_path_s": 8.0, "prompt_tokens_mean": 300, "output_tokens_mean": 60}


def bench_profile(profile: str, tickers: list[str]) -> dict[str, Any]:
    from datetime import datetime, timezone

    from agent.deps import build_deps
    from agent.errors import LLMError
    from agent.graph import build_graph, run_cascade
    from agent.layers import LAYERS
    from agent.llm.call import call_layer
    from agent.llm.embedded import forget_prefixes
    from agent.nodes import (
        compute_indicators,
        compute_risk,
        load_market_data,
        load_news,
    )

    settings = load_settings(overrides={("llm", "provider"): "embedded", ("embedded", "profile"): profile,
                                        ("market", "source"): "csv", ("market", "data_dir"): DAILY_DIR})
    deps = build_deps(settings, sink=False)
    deps.clock = lambda: datetime.fromisoformat(f"{AS_OF}T21:00:00+00:00").astimezone(timezone.utc)
    states = []
    for ticker in tickers:
        state: dict[str, Any] = {"ticker": ticker, "as_of": AS_OF, "layers": [], "size_factor": 1.0, "headlines": []}
        for node in (load_market_data, compute_indicators, compute_risk, load_news):
            state.update(node(state, deps))
        states.append(state)
    timed = {mode: {layer: [] for layer in LAYER_NAMES} for mode in ("cold", "reuse", "no_reuse")}
    tokens = {layer: [] for layer in LAYER_NAMES}
    invalid = dict.fromkeys(LAYER_NAMES, 0)

    answers: list[list[dict]] = [[] for _ in states]

    def call(layer: str, i: int, mode: str) -> None:
        """One layer on state ``i``, shown the earlier layers' verdicts as the cascade would show them
        (the final layer reads their reasons), from this ticker's first pass through the layers."""
        state, order = states[i], LAYER_NAMES.index(layer)
        state["layers"] = answers[i][:order]
        started = time.perf_counter()
        try:
            called = call_layer(LAYERS[layer], state, deps)
            tokens[layer].append((called.tokens_in, called.tokens_out))
            verdict = {"layer": layer, "score": called.answer.recorded_score(), "reason": called.answer.reason,
                       "output": called.answer.model_dump(mode="json")}
        except LLMError as exc:
            invalid[layer] += 1
            tokens[layer].append((getattr(exc, "tokens_in", None), getattr(exc, "tokens_out", None)))
            verdict = {"layer": layer, "score": None, "reason": f"LLM failure ({exc.kind})"}
        timed[mode][layer].append(time.perf_counter() - started)
        if len(answers[i]) == order:
            answers[i].append(verdict)

    for layer in LAYER_NAMES:
        call(layer, 0, "cold")
    for i in range(1, len(states)):
        for layer in LAYER_NAMES:
            call(layer, i, "reuse")
    for i in range(1, len(states)):
        for layer in LAYER_NAMES:
            forget_prefixes()
            call(layer, i, "no_reuse")
    graph = build_graph(deps)
    calls = []
    for state in states:
        record = run_cascade(graph, state["ticker"], as_of=AS_OF)
        calls.append(sum(1 for r in record["layers"] if r["provider"] == "embedded"))
    mean = {mode: {k: statistics.mean(v) for k, v in per.items() if v} for mode, per in timed.items()}
    t_in = [t[0] for v in tokens.values() for t in v if t[0] is not None]
    t_out = [t[1] for v in tokens.values() for t in v if t[1] is not None]
    return {"profile": profile, "models": dict(deps.provider.models), "tickers": tickers, "as_of": AS_OF,
            "layer_s": mean, "path_s": {mode: sum(v.values()) for mode, v in mean.items()},
            "prompt_tokens_mean": statistics.mean(t_in) if t_in else None,
            "output_tokens_mean": statistics.mean(t_out) if t_out else None,
            "tokens_by_layer": {k: [statistics.mean(t[0] for t in v if t[0] is not None),
                                    statistics.mean(t[1] for t in v if t[1] is not None)] for k, v in tokens.items()
                                if any(t[0] is not None for t in v)},
            "invalid": invalid,
            "llm_calls_per_decision": statistics.mean(calls)}


def print_bars(results: list[dict[str, Any]], default_profile: str, fastest_profile: str) -> None:
    for r in results:
        print(f"embedded profile {r['profile']} ({', '.join(sorted(set(r['models'].values())))}), "
              f"{len(r['tickers'])} tickers as of {r['as_of']}:")
        for mode, label in (("cold", "first call (load + prefix)"), ("reuse", "prefix reused"),
                            ("no_reuse", "whole prompt each call")):
            per = r["layer_s"].get(mode) or {}
            print(f"  {label:<28} " + ", ".join(f"{k} {v:.1f}s" for k, v in per.items())
                  + f"  -> five layers {r['path_s'].get(mode, 0):.1f} s")
        print("  tokens in/out per layer: " + ", ".join(f"{k} {v[0]:.0f}/{v[1]:.0f}" for k, v in r["tokens_by_layer"].items())
              + f"; invalid answers {r['invalid']}; LLM calls per decision {r['llm_calls_per_decision']:.2f}")
    by = {r["profile"]: r for r in results}
    rows = []
    if default_profile in by:
        d = by[default_profile]
        rows.append((f"five-layer path, default profile ({default_profile})", d["path_s"]["reuse"], BARS["default_path_s"], "s"))
        rows.append(("prompt tokens per layer, mean", d["prompt_tokens_mean"], BARS["prompt_tokens_mean"], ""))
        rows.append(("output tokens per layer, mean", d["output_tokens_mean"], BARS["output_tokens_mean"], ""))
        saved = d["path_s"]["no_reuse"] - d["path_s"]["reuse"]
        print(f"prefix reuse saves {saved:.1f} s per ticker on the default profile "
              f"({saved / max(d['path_s']['no_reuse'], 1e-9):.0%} of the whole-prompt path)")
    if fastest_profile in by:
        rows.append((f"five-layer path, fastest profile ({fastest_profile})", by[fastest_profile]["path_s"]["reuse"],
                     BARS["fastest_path_s"], "s"))
    print("speed bars (issue 13):")
    for name, value, bar, unit in rows:
        ok = value is not None and value <= bar
        print(f"  {'PASS' if ok else 'MISS'}  {name}: {'-' if value is None else f'{value:.1f}'}{unit} (bar <= {bar}{unit})")
