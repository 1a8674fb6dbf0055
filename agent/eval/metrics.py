"""What an evaluation reports: each example's outcome, and accuracy, macro-F1, per-class scores and the confusion matrix.

Predictions outside the gold labels (``invalid`` answers, ``screened`` texts) count as wrong; the
invalid-output rate, latency and the majority-class baseline sit next to them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from agent.eval.dataset import (
    INVALID,
    SCREENED,
    SENTIMENT_LABELS,
    in_label_order,
    label_order,
)


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
    tokens_in: int | None = None
    tokens_out: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and macro-F1 over the gold labels, and the confusion matrix.

    A prediction outside the gold labels (``invalid``, or ``neutral`` on a two-class set) is simply wrong:
    it lowers the recall of its gold class and the precision of no class.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    n = len(gold)
    classes = sorted(set(gold), key=label_order)
    columns = sorted(set(SENTIMENT_LABELS) | {INVALID} | set(predicted), key=label_order)
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
    majority = max(classes, key=lambda c: (counts[c], -label_order(c)[0])) if classes else None
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
        "gold_distribution": in_label_order(Counter(o.gold for o in outcomes)),
        "predicted_distribution": in_label_order(Counter(o.predicted for o in outcomes)),
        "latency_ms": latency_stats([o.latency_ms for o in outcomes if o.latency_ms is not None]),
        "tokens_per_example": {k: (float(np.mean(v)) if v else None) for k, v in (
            ("in", [o.tokens_in for o in outcomes if o.tokens_in is not None]),
            ("out", [o.tokens_out for o in outcomes if o.tokens_out is not None]))},
        # The score is the layer's other output (1.0 clearly positive, 0.0 clearly negative): does it separate
        # the gold classes even where the label does not?
        "mean_score_by_gold": {g: (float(np.mean(v)) if v else None) for g, v in _scores_by_gold(outcomes).items()},
    }


def _scores_by_gold(outcomes: list[Outcome]) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {g: [] for g in sorted({o.gold for o in outcomes}, key=label_order)}
    for o in outcomes:
        if o.score is not None:
            scores[o.gold].append(o.score)
    return scores
