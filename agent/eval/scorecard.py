"""``make eval``: the judgment scorecard of the embedded models, rerunnable with any provider.

For each model, layer 1 runs over the held-out evaluation split of both sentiment sets (a seeded,
balanced sample, ``dataset.dev_eval_split``: the development part before it is the only one prompts
were written against). Each row shows accuracy and macro-F1 against the majority class and the
lexicon baseline, the invalid-answer rate, latency and tokens per example. Then the labelled cascade
scenarios (``scenarios.py``) run through the default profile's layers.

    python -m agent.eval scorecard [--models qwen2.5-coder-1.5b,...] [--per-class 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.config import load_settings
from agent.deps import build_deps
from agent.eval.dataset import SENTIMENT_SETS, SPLIT_SEED, dev_eval_split, load_dataset
from agent.eval.lexicon import lexicon_label
from agent.eval.metrics import classification_metrics
from agent.eval.sentiment import evaluate_sentiment
from agent.llm.catalogue import MODELS

SENTIMENT_DIR = SENTIMENT_SETS
DATASETS = {"phrasebank": ("financial_phrasebank_50agree_4846.csv", None),
            "news_pt": ("news_labeled_pt.csv", "text")}
DEV_PER_CLASS = 10


def sentiment_rows(models: list[str], per_class: int, provider: str, data_dir: Path,
                   console: Console) -> list[dict[str, Any]]:
    rows = []
    for name, (file, text_column) in DATASETS.items():
        dataset = load_dataset(data_dir / file, text_column)
        _, held_out = dev_eval_split(dataset.examples, dev_per_class=DEV_PER_CLASS, eval_per_class=per_class)
        gold = [ex.label for ex in held_out]
        lexicon = classification_metrics(gold, [lexicon_label(ex.text) for ex in held_out])
        selection = {"mode": "held-out split", "n": len(held_out), "per_class": per_class, "seed": SPLIT_SEED,
                     "dev_per_class_excluded": DEV_PER_CLASS}
        for key in models:
            overrides = {("llm", "provider"): provider, ("market", "source"): "sim"}
            if provider == "embedded":
                overrides[("embedded", "models")] = {"sentiment": key}
            deps = build_deps(load_settings(overrides=overrides), sink=False)
            console.print(f"[dim]{name}: {len(held_out)} examples through {deps.provider.models['sentiment']}[/]")
            report = evaluate_sentiment(dataset, deps, warmup=1, chosen=(held_out, selection))
            rows.append({"dataset": name, "model": report["model"], "examples": report["examples"],
                         "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                         "majority_accuracy": report["majority_baseline"]["accuracy"],
                         "majority_macro_f1": _majority_f1(gold),
                         "lexicon_accuracy": lexicon["accuracy"], "lexicon_macro_f1": lexicon["macro_f1"],
                         "invalid_rate": report["invalid"]["rate"], "invalid_by_kind": report["invalid"]["by_kind"],
                         "latency_ms_mean": report["latency_ms"]["mean"],
                         "tokens_in": report["tokens_per_example"]["in"],
                         "tokens_out": report["tokens_per_example"]["out"],
                         "confusion": report["confusion"], "selection": selection})
    return rows


def _majority_f1(gold: list[str]) -> float | None:
    if not gold:
        return None
    majority = max(set(gold), key=gold.count)
    return classification_metrics(gold, [majority] * len(gold))["macro_f1"]


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_sentiment(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="layer 1 (sentiment), held-out split", header_style="bold")
    for col in ("set", "model", "n", "accuracy", "macro-F1", "majority acc/F1", "lexicon acc/F1", "invalid",
                "s/example", "tokens in/out"):
        table.add_column(col, justify="left" if col in ("set", "model") else "right")
    for r in rows:
        beats = r["macro_f1"] is not None and r["macro_f1"] > max(r["majority_macro_f1"] or 0, r["lexicon_macro_f1"] or 0)
        table.add_row(r["dataset"], r["model"], str(r["examples"]), _f(r["accuracy"]),
                      f"[{'green' if beats else 'red'}]{_f(r['macro_f1'])}[/]",
                      f"{_f(r['majority_accuracy'])}/{_f(r['majority_macro_f1'])}",
                      f"{_f(r['lexicon_accuracy'])}/{_f(r['lexicon_macro_f1'])}", _f(r["invalid_rate"]),
                      _f((r["latency_ms_mean"] or 0) / 1000, 1), f"{_f(r['tokens_in'], 0)}/{_f(r['tokens_out'], 0)}")
    console.print(table)
    for r in rows:
        conf = r["confusion"]
        console.print(f"  {r['dataset']} {r['model']} confusion (rows gold, columns {', '.join(conf['columns'])}): "
                      + "; ".join(f"{g} {[row[c] for c in conf['columns']]}" for g, row in conf["matrix"].items()),
                      highlight=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.eval scorecard", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="catalogue keys for layer 1 (default: all)")
    p.add_argument("--per-class", type=int, default=20, help="held-out examples per label and set (default 20)")
    p.add_argument("--provider", default="embedded", choices=["embedded", "ollama", "auto"])
    p.add_argument("--data-dir", type=Path, default=SENTIMENT_DIR)
    p.add_argument("--skip-sentiment", action="store_true")
    p.add_argument("--skip-scenarios", action="store_true")
    p.add_argument("--json", type=Path, help="also write the scorecard as JSON here")
    args = p.parse_args(argv)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    console = Console()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        print(f"error: unknown model(s) {unknown}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    card: dict[str, Any] = {}
    if not args.skip_sentiment:
        card["sentiment"] = sentiment_rows(models if args.provider == "embedded" else ["configured"],
                                           args.per_class, args.provider, args.data_dir, console)
        print_sentiment(card["sentiment"], console)
    if not args.skip_scenarios:
        from agent.eval.scenarios import print_scenarios, run_scenarios

        card["scenarios"] = run_scenarios(args.provider)
        print_scenarios(card["scenarios"], console)
    if args.json:
        args.json.write_text(json.dumps(card, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
