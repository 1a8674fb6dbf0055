"""Decision records for the dashboard: the JSONL files under LOG_DIR, indexed incrementally.

A busy loop writes thousands of records a day (every ticker, every cycle). Re-reading them on each
poll would not scale, so each file is read once up to its last complete line and only the new
bytes are read afterwards. The index keeps a small summary per record and where the record lies
in its file; the full record (layers, snapshots) is read back on demand for the detail page.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from agent.config import LAYER_NAMES
from agent.sink import B3_TZ, DecisionSink

REASON_CHARS = 300  # the summary's reason is cut here; the detail page shows it whole


@dataclass
class Summary:
    """What the lists, the funnel and the latest-per-ticker view need of one record."""

    decision_id: str
    ts: datetime
    day: date  # the B3 date of ``ts``: the file it lives in
    ticker: str
    bar_date: str | None
    decision: str
    confidence: float | None
    discarded_at: str | None
    reason: str
    origin: str
    data_source: str
    llm_provider: str
    defaults_in_use: list[str]
    layers: list[tuple[str, bool, str | None]]  # (layer, passed, error kind)
    path: Path
    offset: int

    def public(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "ts": self.ts.isoformat(), "ticker": self.ticker,
                "bar_date": self.bar_date, "decision": self.decision, "confidence": self.confidence,
                "discarded_at": self.discarded_at, "reason": self.reason, "origin": self.origin,
                "data_source": self.data_source, "llm_provider": self.llm_provider,
                "defaults_in_use": self.defaults_in_use,
                "layers": [{"layer": n, "passed": p, "error": e} for n, p, e in self.layers]}


def summarize(record: dict[str, Any], path: Path, offset: int) -> Summary:
    """Raises KeyError/ValueError/TypeError on a record that lacks what the dashboard shows."""
    ts = datetime.fromisoformat(record["ts"])
    if ts.tzinfo is None:
        raise ValueError(f"ts {record['ts']!r} has no time zone")
    reason = str(record.get("reason") or "")
    return Summary(
        decision_id=str(record["decision_id"]), ts=ts, day=ts.astimezone(B3_TZ).date(), ticker=str(record["ticker"]),
        bar_date=record.get("bar_date"), decision=str(record["decision"]), confidence=record.get("confidence"),
        discarded_at=record.get("discarded_at"),
        reason=reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…",
        origin=str(record.get("origin") or "one_shot"), data_source=str(record.get("data_source") or "?"),
        llm_provider=str(record.get("llm_provider") or "?"), defaults_in_use=list(record.get("defaults_in_use") or []),
        layers=[(str(r["layer"]), bool(r["passed"]), r.get("error")) for r in record.get("layers") or []],
        path=path, offset=offset)


class RecordIndex:
    """Summaries of every record in the sink's daily files, oldest first; ``refresh()`` reads new lines only."""

    def __init__(self, sink: DecisionSink):
        self.sink = sink
        self._lock = threading.Lock()
        self._read_to: dict[Path, int] = {}  # bytes of each file already indexed (always at a line end)
        self._by_file: dict[Path, list[Summary]] = {}
        self.skipped = 0  # lines that were not records (torn, corrupt or missing fields)

    def refresh(self) -> None:
        with self._lock:
            present = {path for _, path in self.sink.files()}
            for gone in set(self._by_file) - present:  # pruned by LOG_RETENTION_DAYS
                self._by_file.pop(gone, None)
                self._read_to.pop(gone, None)
            for path in sorted(present):
                self._read_new(path)

    def _read_new(self, path: Path) -> None:
        start = self._read_to.get(path, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1  # a line still being written is read on a later refresh
        if end <= 0:
            return
        summaries = self._by_file.setdefault(path, [])
        offset = start
        for raw in chunk[:end].splitlines(keepends=True):
            line_at, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                summaries.append(summarize(json.loads(raw), path, line_at))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
                self.skipped += 1
                logger.warning("dashboard: {}:{} is not a decision record ({}); skipped", path, line_at,
                               type(exc).__name__)
        self._read_to[path] = start + end

    def all(self) -> list[Summary]:
        """Every summary, ordered by decision time."""
        self.refresh()
        with self._lock:
            out = [s for path in sorted(self._by_file) for s in self._by_file[path]]
        out.sort(key=lambda s: s.ts)
        return out

    def select(self, *, ticker: str | None = None, since: date | None = None, until: date | None = None,
               decision: str | None = None, origin: str | None = None) -> list[Summary]:
        return [s for s in self.all()
                if (ticker is None or s.ticker == ticker) and (since is None or s.day >= since)
                and (until is None or s.day <= until) and (decision is None or s.decision == decision)
                and (origin is None or s.origin == origin)]

    def latest_per_ticker(self, origin: str | None = None) -> list[Summary]:
        latest: dict[str, Summary] = {}
        for s in self.select(origin=origin):
            latest[s.ticker] = s
        return sorted(latest.values(), key=lambda s: s.ticker)

    def find(self, decision_id: str, ts: datetime | None = None) -> tuple[dict[str, Any], int] | None:
        """The full record with this id (the latest, or the one made at ``ts``) and how many times the
        id was recorded: the loop re-decides an unchanged daily bar each cycle under the same id."""
        matches = [s for s in self.all() if s.decision_id == decision_id]
        if ts is not None:
            matches = [s for s in matches if s.ts == ts]
        if not matches:
            return None
        chosen = matches[-1]
        with open(chosen.path, "rb") as fh:
            fh.seek(chosen.offset)
            return json.loads(fh.readline()), len(matches)


def funnel(summaries: list[Summary], unique: bool = True) -> dict[str, Any]:
    """How far the decisions got: per layer, how many reached it, passed, were discarded or failed.

    ``unique``: count each decision id once (its latest record), since the loop re-records an unchanged
    bar every cycle; otherwise every record counts (what the LLM calls cost).
    """
    if unique:
        summaries = list({s.decision_id: s for s in summaries}.values())
    stages: list[dict[str, Any]] = []
    before_layers = sum(1 for s in summaries if not s.layers and s.discarded_at not in (None, *LAYER_NAMES))
    for layer in LAYER_NAMES:
        reached = [s for s in summaries if any(n == layer for n, _, _ in s.layers)]
        passed = sum(1 for s in reached if any(n == layer and p for n, p, _ in s.layers))
        errors = sum(1 for s in reached if any(n == layer and e for n, _, e in s.layers))
        stages.append({"stage": layer, "reached": len(reached), "passed": passed,
                       "discarded": len(reached) - passed, "errors": errors})
    after = {k: sum(1 for s in summaries if s.discarded_at == k) for k in ("decision", "portfolio")}
    by_day: dict[str, dict[str, int]] = {}
    for s in summaries:
        row = by_day.setdefault(s.day.isoformat(), {})
        key = "BUY" if s.decision == "BUY" else (s.discarded_at or "HOLD")
        row[key] = row.get(key, 0) + 1
    return {"decisions": len(summaries), "buy": sum(1 for s in summaries if s.decision == "BUY"),
            "hold": sum(1 for s in summaries if s.decision != "BUY"), "stopped_before_layers": before_layers,
            "layers": stages, "blocked_after_layers": after, "by_day": dict(sorted(by_day.items()))}
