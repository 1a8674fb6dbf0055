"""In-process metrics: counters (the funnel, invalid LLM outputs, errors), gauges and latency histograms.

A plain registry, so that every failure is counted even with no metrics server; the Prometheus
exporter (agent/ops/metrics_server.py) reads the same registry on every scrape.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

Labels = tuple[tuple[str, str], ...]

# Seconds: from a fast fake model (ms) to a 7B model on a CPU that is reloading (minutes).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _key(labels: dict[str, object]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense (per-bucket counts, sum, count)."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip([*map(str, self.buckets), "+Inf"], self.counts):
            running += n
            out.append((bound, running))
        return out


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, Labels]] = Counter()
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._histograms: dict[tuple[str, Labels], Histogram] = {}

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        key = (name, _key(labels))
        with self._lock:
            self._counts[key] += amount

    def get(self, name: str, **labels: str) -> int:
        """Sum of ``name`` over every label set that includes ``labels``."""
        want = set(_key(labels))
        with self._lock:
            return sum(n for (nm, lbl), n in self._counts.items() if nm == name and want <= set(lbl))

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[(name, _key(labels))] = float(value)

    def gauge(self, name: str, **labels: str) -> float | None:
        with self._lock:
            return self._gauges.get((name, _key(labels)))

    def observe(self, name: str, value: float, buckets: tuple[float, ...] = LATENCY_BUCKETS, **labels: str) -> None:
        key = (name, _key(labels))
        with self._lock:
            hist = self._histograms.get(key)
            if hist is None:
                hist = self._histograms[key] = Histogram(buckets)
            hist.observe(value)

    def histogram(self, name: str, **labels: str) -> Histogram | None:
        with self._lock:
            return self._histograms.get((name, _key(labels)))

    def snapshot(self) -> list[tuple[str, dict[str, str], int]]:
        with self._lock:
            return [(name, dict(lbl), n) for (name, lbl), n in sorted(self._counts.items())]

    def gauges(self) -> list[tuple[str, dict[str, str], float]]:
        with self._lock:
            return [(name, dict(lbl), v) for (name, lbl), v in sorted(self._gauges.items())]

    def histograms(self) -> list[tuple[str, dict[str, str], list[tuple[str, int]], float, int]]:
        with self._lock:
            return [(name, dict(lbl), h.cumulative(), h.sum, h.count)
                    for (name, lbl), h in sorted(self._histograms.items())]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._gauges.clear()
            self._histograms.clear()


COUNTERS = Counters()


class ModelSwitches:
    """Counts how often consecutive LLM calls on one host ask for a different model (a likely reload)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        self.cycle = 0

    def observe(self, host: str, model: str) -> None:
        with self._lock:
            if self._last.get(host) not in (None, model):
                self.cycle += 1
                COUNTERS.inc("model_switches_total", host=host)
            self._last[host] = model

    def start_cycle(self) -> None:
        with self._lock:
            self.cycle = 0

