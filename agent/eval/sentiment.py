"""Offline evaluation of the cascade's LLM layers on labelled data. For now, layer 1 (sentiment).

    python -m agent.eval sentiment --dataset ../shared/data/sentiment/financial_phrasebank_50agree_4846.csv \\
        --sample 200 --seed 1

Each labelled text becomes the one headline of a placeholder ticker (EVAL3), screened and
sanitised as ``agent.graph.load_news`` does with given headlines, next to a flat price action
(no move, RSI 50) so only the text can move the answer. Layer 1 runs through ``call_layer``,
the same prompt, schema and validation as the live cascade. Reported: accuracy, macro-F1 over
the gold labels, per-class precision/recall/F1, the confusion matrix (with an ``invalid``
column for answers that failed validation), the invalid-output rate by kind, latency per
example, and the majority-class baseline.

The embedded model takes about 1-3 s per example, so a whole data set takes hours: use
``--limit 100`` (the first rows) or ``--sample 200 --seed S`` (stratified random rows).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import numpy as np
from rich.console import Console
from rich.table import Table

from agent.cli import exit_code
from agent.config import load_settings
from agent.deps import CascadeDeps, build_deps
from agent.errors import ConfigError, LLMError, ProviderError
from agent.layers.base import LAYERS, call_layer
from agent.ops.logs import setup_logging
from agent.news.headline import normalize_text
from agent.news.injection import PROMPT_MAX_CHARS, sanitize_for_prompt, screen_headline
from agent.state import CascadeState
from agent.trace import announce_defaults

SENTIMENT_LABELS = ("positive", "negative", "neutral")
INVALID, SCREENED = "invalid", "screened"
# Gold labels as data sets write them -> the layer's labels (Portuguese: the news_labeled_pt set's label_pt).
LABEL_ALIASES = {
    "positive": "positive", "pos": "positive", "positivo": "positive", "positiva": "positive",
    "negative": "negative", "neg": "negative", "negativo": "negative", "negativa": "negative",
    "neutral": "neutral", "neu": "neutral", "neutro": "neutral", "neutra": "neutral",
}
TEXT_COLUMNS = ("text", "sentence", "headline", "title")
LABEL_COLUMNS = ("label", "sentiment")

EVAL_TICKER = "EVAL3"  # no prompt override, no real company: the text alone names what it is about
EVAL_BAR_DATE = "2025-06-30"
# A flat tape: no move and a mid RSI, so the price action argues for nothing.
NEUTRAL_PRICE_ACTION = {"close": 10.0, "change_1d": 0.0, "change_5d": 0.0, "change_20d": 0.0, "rsi": 50.0}
DEFAULT_MAX_CHARS = PROMPT_MAX_CHARS  # what the live agent keeps of a headline
WARMUP_TEXT = "The company published its quarterly report on schedule."


# ------------------------------------------------------------------ the data set

@dataclass(frozen=True)
class Example:
    row: int  # 1-based data row in the file (the header is row 0)
    text: str
    label: str  # normalised: positive / negative / neutral


@dataclass
class Dataset:
    path: Path
    text_column: str
    label_column: str
    examples: list[Example]
    skipped: int = 0  # rows with an empty text or label


def detect_columns(header: Iterable[str], text_column: str | None = None,
                   label_column: str | None = None) -> tuple[str, str]:
    """The (text, label) columns: the ones asked for, or the first known name present (any case).

    Raises ConfigError naming the columns the file has.
    """
    columns = [c for c in header]
    by_lower = {c.strip().lower(): c for c in columns}
    present = ", ".join(repr(c) for c in columns) or "none"

    def pick(asked: str | None, candidates: tuple[str, ...], what: str, flag: str) -> str:
        if asked is not None:
            if asked in columns:
                return asked
            if asked.strip().lower() in by_lower:
                return by_lower[asked.strip().lower()]
            raise ConfigError(f"{flag}: no column {asked!r} in the dataset; its columns are {present}")
        for name in candidates:
            if name in by_lower:
                return by_lower[name]
        raise ConfigError(f"no {what} column found (looked for {', '.join(candidates)}); the dataset's columns are "
                          f"{present}: name one with {flag}")

    return (pick(text_column, TEXT_COLUMNS, "text", "--text-column"),
            pick(label_column, LABEL_COLUMNS, "label", "--label-column"))


def normalize_label(raw: str) -> str | None:
    """``Positivo``/``POSITIVE ``/``pos`` -> ``positive``; None when the label is not a sentiment."""
    return LABEL_ALIASES.get(raw.strip().lower())


def read_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def load_dataset(path: Path, text_column: str | None = None, label_column: str | None = None) -> Dataset:
    """Read a CSV of labelled texts. Raises ConfigError for a missing file, column or unknown label."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--dataset: no such file {path}")
    csv.field_size_limit(max(csv.field_size_limit(), 10_000_000))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            text_col, label_col = detect_columns(reader.fieldnames or [], text_column, label_column)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--dataset {path}: not a readable UTF-8 CSV ({exc})") from exc
    examples, skipped, unknown = [], 0, Counter()
    for i, row in enumerate(rows, start=1):
        text, raw = (row.get(text_col) or "").strip(), (row.get(label_col) or "").strip()
        if not text or not raw:
            skipped += 1
            continue
        label = normalize_label(raw)
        if label is None:
            unknown[raw] += 1
            continue
        examples.append(Example(i, text, label))
    if unknown:
        seen = ", ".join(f"{k!r} ({n})" for k, n in unknown.most_common(8))
        raise ConfigError(f"column {label_col!r} of {path} has labels that are not a sentiment: {seen}; "
                          f"expected {', '.join(SENTIMENT_LABELS)} (or Positivo/Negativo/Neutro): "
                          f"pick another column with --label-column")
    if not examples:
        raise ConfigError(f"{path}: no labelled rows in columns {text_col!r}/{label_col!r}")
    return Dataset(path, text_col, label_col, examples, skipped)


def stratified_sample(examples: list[Example], n: int, seed: int) -> list[Example]:
    """``n`` examples drawn at random (``seed``) keeping each label's share (largest remainder), in file order."""
    if n >= len(examples):
        return list(examples)
    by_label: dict[str, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    labels = sorted(by_label, key=_label_order)
    exact = {lab: n * len(by_label[lab]) / len(examples) for lab in labels}
    quota = {lab: int(exact[lab]) for lab in labels}
    by_remainder = sorted(labels, key=lambda lab: (-(exact[lab] - quota[lab]), _label_order(lab)))
    for lab in by_remainder[: n - sum(quota.values())]:
        quota[lab] += 1
    rng = random.Random(seed)
    chosen = [ex for lab in labels for ex in rng.sample(by_label[lab], quota[lab])]
    return sorted(chosen, key=lambda ex: ex.row)


def _in_label_order(counts: Counter) -> dict[str, int]:
    return {k: counts[k] for k in sorted(counts, key=_label_order)}


def _label_order(label: str) -> tuple[int, str]:
    order = (*SENTIMENT_LABELS, INVALID, SCREENED)
    return (order.index(label) if label in order else len(order), label)


# ------------------------------------------------------------------ running layer 1

def eval_state(headline: str) -> CascadeState:
    """The smallest cascade state layer 1 reads: one (already sanitised) headline and a flat tape."""
    return {"ticker": EVAL_TICKER, "as_of": None, "layers": [], "size_factor": 1.0, "headlines": [headline],
            "news": {"provider": "input", "selected": 1, "dropped": [], "summary": "1 headline(s)"},
            "market": {"bar_date": EVAL_BAR_DATE}, "indicators": dict(NEUTRAL_PRICE_ACTION)}


def prepare_text(text: str, max_chars: int) -> tuple[str | None, str | None, bool]:
    """(headline for the prompt, why it was screened out, whether it was cut), as load_news prepares given headlines."""
    reason = screen_headline(text)
    if reason:
        return None, reason, False
    return sanitize_for_prompt(text, max_chars), None, len(normalize_text(text)) > max_chars


@dataclass
class Outcome:
    row: int
    gold: str
    predicted: str  # positive / negative / neutral, or invalid / screened
    latency_ms: float | None
    truncated: bool
    headline: str | None
    score: float | None = None
    reason: str | None = None
    error_kind: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def classify(example: Example, deps: CascadeDeps, max_chars: int) -> Outcome:
    """Run layer 1 on one example. A failed validation is an ``invalid`` prediction with its kind."""
    headline, screened, truncated = prepare_text(example.text, max_chars)
    if headline is None:
        return Outcome(example.row, example.label, SCREENED, None, False, None, error_kind="screened", error=screened)
    started = time.perf_counter()
    try:
        answer, *_ = call_layer(LAYERS["sentiment"], eval_state(headline), deps)
    except LLMError as exc:
        ms = (time.perf_counter() - started) * 1000.0
        return Outcome(example.row, example.label, INVALID, ms, truncated, headline, error_kind=exc.kind,
                       error=str(exc)[:300])
    ms = (time.perf_counter() - started) * 1000.0
    return Outcome(example.row, example.label, answer.sentiment, ms, truncated, headline, score=answer.score,
                   reason=answer.reason)


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


# ------------------------------------------------------------------ metrics

def classification_metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and macro-F1 over the gold labels, and the confusion matrix.

    A prediction outside the gold labels (``invalid``, or ``neutral`` on a two-class set) is simply wrong:
    it lowers the recall of its gold class and the precision of no class.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    n = len(gold)
    classes = sorted(set(gold), key=_label_order)
    columns = sorted(set(SENTIMENT_LABELS) | {INVALID} | set(predicted), key=_label_order)
    pairs = Counter(zip(gold, predicted))
    matrix = {g: {p: pairs.get((g, p), 0) for p in columns} for g in classes}
    per_class = {}
    for c in classes:
        tp = matrix[c][c]
        predicted_c = sum(matrix[g][c] for g in classes)
        support = sum(matrix[c].values())
        precision = tp / predicted_c if predicted_c else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                        "predicted": predicted_c}
    counts = Counter(gold)
    majority = max(classes, key=lambda c: (counts[c], -_label_order(c)[0])) if classes else None
    return {
        "n": n,
        "accuracy": sum(pairs.get((c, c), 0) for c in classes) / n if n else None,
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])) if per_class else None,
        "labels": classes,
        "per_class": per_class,
        "confusion": {"rows": "gold", "columns": columns, "matrix": matrix},
        "majority_baseline": {"label": majority, "accuracy": counts[majority] / n if n else None},
    }


def latency_stats(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}
    arr = np.asarray(latencies_ms, dtype=float)
    return {"n": int(arr.size), "mean": float(arr.mean()), "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Every number the report shows, from the per-example outcomes."""
    n = len(outcomes)
    metrics = classification_metrics([o.gold for o in outcomes], [o.predicted for o in outcomes])
    invalid = [o for o in outcomes if o.predicted == INVALID]
    by_kind = Counter(o.error_kind for o in invalid)
    return {
        **metrics,
        "invalid": {"count": len(invalid), "rate": len(invalid) / n if n else None,
                    "by_kind": {k: {"count": c, "rate": c / n} for k, c in by_kind.most_common()}},
        "screened": sum(o.predicted == SCREENED for o in outcomes),
        "truncated": sum(o.truncated for o in outcomes),
        "gold_distribution": _in_label_order(Counter(o.gold for o in outcomes)),
        "predicted_distribution": _in_label_order(Counter(o.predicted for o in outcomes)),
        "latency_ms": latency_stats([o.latency_ms for o in outcomes if o.latency_ms is not None]),
        # The score is the layer's other output (1.0 clearly positive, 0.0 clearly negative): does it separate
        # the gold classes even where the label does not?
        "mean_score_by_gold": {g: (float(np.mean(v)) if v else None) for g, v in _scores_by_gold(outcomes).items()},
    }


def _scores_by_gold(outcomes: list[Outcome]) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {g: [] for g in sorted({o.gold for o in outcomes}, key=_label_order)}
    for o in outcomes:
        if o.score is not None:
            scores[o.gold].append(o.score)
    return scores


def evaluate_sentiment(dataset: Dataset, deps: CascadeDeps, *, limit: int | None = None, sample: int | None = None,
                       seed: int = 0, max_chars: int = DEFAULT_MAX_CHARS, warmup: int = 0,
                       progress: Callable[[int, int, list[Outcome], float], None] | None = None,
                       out: TextIO | None = None) -> dict[str, Any]:
    """Run layer 1 over the data set (all of it, its first ``limit`` rows, or a stratified ``sample``) and report."""
    if limit is not None and sample is not None:
        raise ConfigError("--limit and --sample are exclusive")
    for name, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if sample is not None:
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
        "price_action": dict(NEUTRAL_PRICE_ACTION),
        "max_chars": max_chars,
        "agent_headline_max_chars": PROMPT_MAX_CHARS,  # what the live agent's load_news keeps of a headline
        "warmup_calls": warmup,
        "wall_s": run.wall_s,
        **summarize(run.outcomes),
    }


# ------------------------------------------------------------------ output

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} ms"


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    sel = report["selection"]
    how = {"all": "all rows", "first rows": f"first {sel.get('n')} rows",
           "stratified sample": f"stratified sample of {sel.get('n')}, seed {sel.get('seed')}"}[sel["mode"]]
    console.print(f"[bold]layer 1 (sentiment)[/] on {report['dataset']}", highlight=False)
    console.print(f"  columns text={report['text_column']!r} label={report['label_column']!r}; "
                  f"{report['examples']} of {report['dataset_rows']} labelled rows ({how})"
                  + (f"; {report['skipped_rows']} rows without text or label skipped" if report["skipped_rows"] else "")
                  + (f"; [red]INTERRUPTED after {report['examples']} of {report['examples_planned']}: partial "
                     f"results[/]" if report["interrupted"] else ""), highlight=False)
    console.print(f"  model {report['model']} ({report['provider']}), prompt {report['prompt_version']}; "
                  f"each text is the one headline of {report['ticker']} with a flat price action", highlight=False)
    console.print(f"  texts cut to {report['max_chars']} characters: {report['truncated']} of {report['examples']} "
                  f"were longer"
                  + (f" (the live agent keeps {report['agent_headline_max_chars']})"
                     if report["max_chars"] != report["agent_headline_max_chars"] else "")
                  + (f"; {report['screened']} screened out as prompt injection (counted wrong)"
                     if report["screened"] else ""), highlight=False)

    base = report["majority_baseline"]
    head = Table(show_header=False, box=None, padding=(0, 2))
    head.add_row("accuracy", _pct(report["accuracy"]),
                 f"majority baseline ({base['label']}) {_pct(base['accuracy'])}")
    head.add_row("macro-F1", f"{report['macro_f1']:.3f}" if report["macro_f1"] is not None else "-",
                 f"over {', '.join(report['labels'])}")
    inv = report["invalid"]
    head.add_row("invalid outputs", f"{inv['count']} ({_pct(inv['rate'])})",
                 ", ".join(f"{k} {v['count']}" for k, v in inv["by_kind"].items()))
    lat = report["latency_ms"]
    head.add_row("latency", f"mean {_ms(lat['mean'])}", f"p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  "
                 f"max {_ms(lat['max'])}  (wall {report['wall_s']:.1f} s)")
    scores = report.get("mean_score_by_gold") or {}
    if scores:
        head.add_row("mean score", "by gold label", "  ".join(f"{g} {'-' if v is None else f'{v:.2f}'}"
                                                                for g, v in scores.items()))
    console.print(head)

    per = Table(title="per class", header_style="bold")
    for col in ("gold label", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "gold label" else "right")
    for label, m in report["per_class"].items():
        per.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(per)

    conf = report["confusion"]
    cm = Table(title="confusion matrix (rows gold, columns predicted)", header_style="bold")
    cm.add_column("gold \\ predicted")
    for col in conf["columns"]:
        cm.add_column(col, justify="right")
    for gold, row in conf["matrix"].items():
        cm.add_row(gold, *(f"[bold]{row[c]}[/]" if c == gold else str(row[c]) for c in conf["columns"]))
    console.print(cm)


def progress_printer(stream: TextIO, every: int | None = None) -> Callable[[int, int, list[Outcome], float], None]:
    """One line on ``stream`` every ``every`` examples (about 20 lines a run) and at the end."""

    def report(done: int, total: int, outcomes: list[Outcome], elapsed: float) -> None:
        step = every or max(1, total // 20)
        if done % step and done != total:
            return
        right = sum(o.gold == o.predicted for o in outcomes)
        invalid = sum(o.predicted == INVALID for o in outcomes)
        per = elapsed / done
        stream.write(f"[{done:>{len(str(total))}}/{total}] accuracy so far {right / done:.1%}, invalid {invalid}, "
                     f"{per:.2f} s/example, about {per * (total - done):.0f} s left\n")
        stream.flush()

    return report


# ------------------------------------------------------------------ CLI

def start_eval(args: argparse.Namespace) -> CascadeDeps:
    """Config, logging and the LLM provider, as ``agent.cli.start`` does, minus what layer 1 never reads.

    No market source is used (the simulated one is wired and never called) and no decision is
    recorded; the banner announces the embedded model when it serves the run.
    """
    settings = load_settings(args.config, overrides={("llm", "provider"): args.provider, ("market", "source"): "sim"})
    setup_logging(settings, to_file=False)
    deps = build_deps(settings, sink=False)
    announce_defaults(replace(deps, market=None))
    return deps


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.eval",
                                description="Evaluate a cascade layer on labelled data.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    s = tasks.add_parser(
        "sentiment", help="layer 1 (sentiment) over a CSV of labelled texts",
        description="Run layer 1 (sentiment) over a CSV of labelled texts and report accuracy, macro-F1, the "
                    "confusion matrix, the invalid-output rate and latency. The embedded model takes ~1-3 s per "
                    "example: --limit 100 or --sample 200 is the practical choice.")
    s.add_argument("--dataset", type=Path, required=True, help="CSV with a text and a label column")
    s.add_argument("--text-column", help=f"column with the text (default: the first of {', '.join(TEXT_COLUMNS)})")
    s.add_argument("--label-column", help="column with the gold label: positive/negative/neutral or "
                                          "Positivo/Negativo/Neutro (default: label)")
    pick = s.add_mutually_exclusive_group()
    pick.add_argument("--limit", type=int, help="evaluate only the first N labelled rows (default: all)")
    pick.add_argument("--sample", type=int, help="evaluate N rows drawn at random, stratified by label")
    s.add_argument("--seed", type=int, default=0, help="random seed for --sample (default 0)")
    s.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                   help=f"cut each text to N characters before the prompt (default {DEFAULT_MAX_CHARS})")
    s.add_argument("--warmup", type=int, default=1,
                   help="untimed calls before measuring, so model loading is not timed (default 1)")
    s.add_argument("--provider", choices=["auto", "ollama", "embedded"], help="LLM provider (env LLM_PROVIDER)")
    s.add_argument("--config", type=Path, help="config file (default: config.yaml in the project)")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    s.add_argument("--out", type=Path, help="also write one JSON line per example here")
    return p


def main(argv: list[str] | None = None, *,
         start_deps: Callable[[argparse.Namespace], CascadeDeps] = start_eval) -> int:
    """``start_deps`` wires config and the LLM (``start_eval``); tests pass one with fake models."""
    args = _parser().parse_args(argv)
    out = None
    try:
        dataset = load_dataset(args.dataset, args.text_column, args.label_column)
        for name, value in (("--max-chars", args.max_chars), ("--limit", args.limit), ("--sample", args.sample)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if args.out:
            try:
                out = open(args.out, "w", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"--out: cannot write {args.out}: {exc}") from exc
        deps = start_deps(args)
        report = evaluate_sentiment(dataset, deps, limit=args.limit, sample=args.sample, seed=args.seed,
                                    max_chars=args.max_chars, warmup=max(0, args.warmup),
                                    progress=progress_printer(sys.stderr), out=out)
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)
    finally:
        if out is not None:
            out.close()
    if args.json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        print_report(report)
    return 130 if report["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
