"""``python -m agent.eval sentiment``: the command line of the offline evaluation (config, provider, data set, output)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from agent.cli import exit_code
from agent.config import load_settings
from agent.deps import CascadeDeps, build_deps
from agent.errors import ConfigError, ProviderError
from agent.eval.dataset import TEXT_COLUMNS, load_dataset
from agent.eval.output import print_report, progress_printer
from agent.eval.sentiment import DEFAULT_MAX_CHARS, evaluate_sentiment
from agent.ops.logs import setup_logging
from agent.trace import announce_defaults


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
