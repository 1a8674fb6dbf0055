"""Offline evaluation of the cascade's LLM layers on labelled data. For now, layer 1 (sentiment).

    python -m agent.eval sentiment --dataset ../shared/data/sentiment/financial_phrasebank_50agree_4846.csv \\
        --sample 200 --seed 1

Each labelled text becomes the one headline of a placeholder ticker (EVAL3), screened and
sanitised as ``agent.nodes.load_news`` does with given headlines; with a headline, layer 1 is shown
no price action, so only the text can move the answer. Layer 1 runs through ``call_layer``,
the same prompt, schema and validation as the live cascade. Reported: accuracy, macro-F1 over
the gold labels, per-class precision/recall/F1, the confusion matrix (with an ``invalid``
column for answers that failed validation), the invalid-output rate by kind, latency per
example, and the majority-class baseline.

The embedded model takes about 1-3 s per example, so a whole data set takes hours: use
``--limit 100`` (the first rows) or ``--sample 200 --seed S`` (stratified random rows).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from agent.deps import CascadeDeps
from agent.errors import ConfigError, LLMError
from agent.eval.dataset import INVALID, SCREENED, Dataset, Example, stratified_sample
from agent.eval.metrics import Outcome, summarize
from agent.layers import LAYERS
from agent.llm.call import call_layer
from agent.news.headline import normalize_text
from agent.news.injection import PROMPT_MAX_CHARS, sanitize_for_prompt, screen_headline
from agent.state import CascadeState

EVAL_TICKER = "EVAL3"  # no prompt override, no real company: the text alone names what it is about
EVAL_BAR_DATE = "2025-06-30"
DEFAULT_MAX_CHARS = PROMPT_MAX_CHARS  # what the live agent keeps of a headline
WARMUP_TEXT = "The company published its quarterly report on schedule."


def eval_state(headline: str) -> CascadeState:
    """The smallest cascade state layer 1 reads: one (already sanitised) headline. With a headline, layer 1
    is shown no price action (the news decides), so the text alone is judged."""
    return {"ticker": EVAL_TICKER, "as_of": None, "layers": [], "size_factor": 1.0, "headlines": [headline],
            "news": {"provider": "input", "selected": 1, "dropped": [], "summary": "1 headline(s)"},
            "market": {"bar_date": EVAL_BAR_DATE}}


def prepare_text(text: str, max_chars: int) -> tuple[str | None, str | None, bool]:
    """(headline for the prompt, why it was screened out, whether it was cut), as load_news prepares given headlines."""
    reason = screen_headline(text)
    if reason:
        return None, reason, False
    return sanitize_for_prompt(text, max_chars), None, len(normalize_text(text)) > max_chars


def classify(example: Example, deps: CascadeDeps, max_chars: int) -> Outcome:
    """Run layer 1 on one example. A failed validation is an ``invalid`` prediction with its kind."""
    headline, screened, truncated = prepare_text(example.text, max_chars)
    if headline is None:
        return Outcome(example.row, example.label, SCREENED, None, False, None, error_kind="screened", error=screened)
    started = time.perf_counter()
    try:
        called = call_layer(LAYERS["sentiment"], eval_state(headline), deps)
    except LLMError as exc:
        ms = (time.perf_counter() - started) * 1000.0
        return Outcome(example.row, example.label, INVALID, ms, truncated, headline, error_kind=exc.kind,
                       error=str(exc)[:300], tokens_in=getattr(exc, "tokens_in", None),
                       tokens_out=getattr(exc, "tokens_out", None))
    ms = (time.perf_counter() - started) * 1000.0
    answer = called.answer
    return Outcome(example.row, example.label, answer.sentiment, ms, truncated, headline, score=answer.score,
                   reason=answer.reason, tokens_in=called.tokens_in, tokens_out=called.tokens_out)


def warm_up(deps: CascadeDeps, calls: int) -> None:
    """Untimed calls before measuring, so model loading does not land in the first example's latency."""
    for _ in range(calls):
        try:
            call_layer(LAYERS["sentiment"], eval_state(WARMUP_TEXT), deps)
        except LLMError:
            pass


@dataclass
class RunInfo:
    examples_total: int = 0
    interrupted: bool = False
    wall_s: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)


def run_examples(examples: list[Example], deps: CascadeDeps, *, max_chars: int = DEFAULT_MAX_CHARS, warmup: int = 0,
                 progress: Callable[[int, int, list[Outcome], float], None] | None = None,
                 out: TextIO | None = None) -> RunInfo:
    """Classify every example in order; Ctrl-C stops early and keeps what was done."""
    if max_chars < 1:
        raise ConfigError(f"--max-chars must be >= 1, got {max_chars}")
    info = RunInfo(examples_total=len(examples))
    warm_up(deps, warmup)
    started = time.perf_counter()
    try:
        for i, ex in enumerate(examples, start=1):
            outcome = classify(ex, deps, max_chars)
            info.outcomes.append(outcome)
            if out is not None:
                out.write(json.dumps(outcome.as_json(), ensure_ascii=False) + "\n")
                out.flush()
            if progress is not None:
                progress(i, len(examples), info.outcomes, time.perf_counter() - started)
    except KeyboardInterrupt:
        info.interrupted = True
    info.wall_s = time.perf_counter() - started
    return info


def evaluate_sentiment(dataset: Dataset, deps: CascadeDeps, *, limit: int | None = None, sample: int | None = None,
                       seed: int = 0, max_chars: int = DEFAULT_MAX_CHARS, warmup: int = 0,
                       progress: Callable[[int, int, list[Outcome], float], None] | None = None,
                       out: TextIO | None = None,
                       chosen: tuple[list[Example], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run layer 1 over the data set (all of it, its first ``limit`` rows, a stratified ``sample``, or the
    ``chosen`` examples with their description, e.g. the scorecard's held-out split) and report."""
    if limit is not None and sample is not None:
        raise ConfigError("--limit and --sample are exclusive")
    for name, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if chosen is not None:
        chosen, selection = chosen
    elif sample is not None:
        chosen, selection = stratified_sample(dataset.examples, sample, seed), {"mode": "stratified sample",
                                                                                "n": sample, "seed": seed}
    elif limit is not None:
        chosen, selection = dataset.examples[:limit], {"mode": "first rows", "n": limit}
    else:
        chosen, selection = list(dataset.examples), {"mode": "all"}
    run = run_examples(chosen, deps, max_chars=max_chars, warmup=warmup, progress=progress, out=out)
    prompt = deps.prompts.get("sentiment", EVAL_TICKER)
    return {
        "task": "sentiment",
        "layer": "sentiment",
        "dataset": str(dataset.path),
        "text_column": dataset.text_column,
        "label_column": dataset.label_column,
        "dataset_rows": len(dataset.examples),
        "skipped_rows": dataset.skipped,
        "selection": selection,
        "examples": len(run.outcomes),
        "examples_planned": run.examples_total,
        "interrupted": run.interrupted,
        "provider": deps.provider.name,
        "model": deps.provider.models.get("sentiment", "?"),
        "prompt_version": prompt.version,
        "ticker": EVAL_TICKER,
        "max_chars": max_chars,
        "agent_headline_max_chars": PROMPT_MAX_CHARS,  # what the live agent's load_news keeps of a headline
        "warmup_calls": warmup,
        "wall_s": run.wall_s,
        **summarize(run.outcomes),
    }
