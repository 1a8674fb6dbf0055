"""Labelled data sets for the evaluation: reading a CSV of texts and sentiment labels, and sampling it.

Column names and label spellings vary between data sets (``sentence``/``text``, ``Positivo``/``pos``);
both are resolved here, and anything that is not a sentiment is refused with the column named.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from agent.config import PROJECT_ROOT
from agent.errors import ConfigError

# The reference data set beside a development checkout (../shared/data): real daily bars and labelled news.
REFERENCE_DATA = PROJECT_ROOT.parent / "shared" / "data"
DAILY_BARS = REFERENCE_DATA / "b3" / "daily"
SENTIMENT_SETS = REFERENCE_DATA / "sentiment"

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


SPLIT_SEED = 13  # the scorecard's split: never changed once prompts were written against its dev part


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
    labels = sorted(by_label, key=label_order)
    exact = {lab: n * len(by_label[lab]) / len(examples) for lab in labels}
    quota = {lab: int(exact[lab]) for lab in labels}
    by_remainder = sorted(labels, key=lambda lab: (-(exact[lab] - quota[lab]), label_order(lab)))
    for lab in by_remainder[: n - sum(quota.values())]:
        quota[lab] += 1
    rng = random.Random(seed)
    chosen = [ex for lab in labels for ex in rng.sample(by_label[lab], quota[lab])]
    return sorted(chosen, key=lambda ex: ex.row)


def dev_eval_split(examples: list[Example], *, dev_per_class: int, eval_per_class: int,
                   seed: int = SPLIT_SEED) -> tuple[list[Example], list[Example]]:
    """Two disjoint, balanced samples: ``dev_per_class`` rows of each label for prompt work, then the next
    ``eval_per_class`` of the same seeded shuffle for the scorecard. Prompts are tuned on the first only."""
    by_label: dict[str, list[Example]] = {}
    for ex in examples:
        by_label.setdefault(ex.label, []).append(ex)
    dev, held_out = [], []
    for label in sorted(by_label, key=label_order):
        shuffled = random.Random(f"{seed}:{label}").sample(by_label[label], len(by_label[label]))
        dev += shuffled[:dev_per_class]
        held_out += shuffled[dev_per_class:dev_per_class + eval_per_class]
    return sorted(dev, key=lambda ex: ex.row), sorted(held_out, key=lambda ex: ex.row)


def in_label_order(counts: Counter) -> dict[str, int]:
    return {k: counts[k] for k in sorted(counts, key=label_order)}


def label_order(label: str) -> tuple[int, str]:
    order = (*SENTIMENT_LABELS, INVALID, SCREENED)
    return (order.index(label) if label in order else len(order), label)
