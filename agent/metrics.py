"""In-process counters for what the cascade does (the funnel, invalid LLM outputs, errors).

A plain registry so that every failure is counted even with no metrics server; the
Prometheus exporter reads the same counters.
"""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        with self._lock:
            self._counts[key] += amount

    def get(self, name: str, **labels: str) -> int:
        """Sum of ``name`` over every label set that includes ``labels``."""
        want = {(k, str(v)) for k, v in labels.items()}
        with self._lock:
            return sum(n for (nm, lbl), n in self._counts.items() if nm == name and want <= set(lbl))

    def snapshot(self) -> list[tuple[str, dict[str, str], int]]:
        with self._lock:
            return [(name, dict(lbl), n) for (name, lbl), n in sorted(self._counts.items())]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


COUNTERS = Counters()
