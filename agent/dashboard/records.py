"""Decision records for the dashboard: the JSONL files under LOG_DIR, indexed incrementally.

A busy loop writes thousands of records a day (every ticker, every cycle). Re-reading them on each
poll would not scale, so each file is read once up to its last complete line and only the new
bytes are read afterwards. The index keeps a small summary per record and where the record lies
in its file; the full record (layers, snapshots) is read back on demand for the detail page.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import ValidationError

from agent.config import LAYER_NAMES
from agent.dashboard.schemas import DecisionSummary
from agent.market.calendar import B3_TZ
from agent.store.jsonl import DecisionSink


@dataclass(slots=True)
class Summary:
    """One record's summary, and where the record lies (for the decision page to read it whole).

    The fields of the API's DecisionSummary, held as plain slots rather than pydantic models: a month
    of a busy loop is 50,000 records, and this keeps the index at about a third of the memory.
    """

    decision_id: str
    ts: datetime
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
    day: date  # the B3 date of ``ts``: the file it lives in
    path: Path
    offset: int

    def public(self) -> dict[str, Any]:
        """The API's DecisionSummary, as JSON values."""
        out = {name: getattr(self, name) for name in DecisionSummary.model_fields}
        out["ts"] = self.ts.isoformat()
        out["layers"] = [{"layer": n, "passed": p, "error": e} for n, p, e in self.layers]
        return out


def summarize(record: Any, path: Path, offset: int) -> Summary:
    """Raises pydantic's ValidationError (a ValueError) on a line that is not a decision record the
    dashboard can show."""
    r = DecisionSummary.model_validate(record)
    fields = {name: getattr(r, name) for name in DecisionSummary.model_fields}
    fields["layers"] = [(x.layer, x.passed, x.error) for x in r.layers]
    return Summary(**fields, day=r.ts.astimezone(B3_TZ).date(), path=path, offset=offset)


def representative(summaries: list[Summary]) -> list[Summary]:
    """One summary per decision id, in time order: its BUY if it had one, else its latest record.

    The loop re-decides an unchanged bar every cycle under the same id, and once the BUY is acted on
    the later records say HOLD ("already acted on"). The decision on that bar was the BUY.
    """
    chosen: dict[str, Summary] = {}
    for s in summaries:
        kept = chosen.get(s.decision_id)
        if kept is None or kept.decision != "BUY":
            chosen[s.decision_id] = s
    return sorted(chosen.values(), key=lambda s: s.ts)


class RecordIndex:
    """Summaries of every record in the sink's daily files, oldest first; ``refresh()`` reads new lines only."""

    def __init__(self, sink: DecisionSink):
        self.sink = sink
        self._lock = threading.Lock()
        self._read_to: dict[Path, int] = {}  # bytes of each file already indexed (always at a line end)
        self._inode: dict[Path, int] = {}  # a file replaced under the same name is indexed again
        self._by_file: dict[Path, list[Summary]] = {}
        self.skipped = 0  # lines that were not records (torn, corrupt or missing fields)

    def refresh(self) -> None:
        with self._lock:
            present = {path for _, path in self.sink.files()}
            for gone in set(self._by_file) - present:  # pruned by LOG_RETENTION_DAYS
                self._forget(gone)
            for path in sorted(present):
                self._read_new(path)

    def _forget(self, path: Path) -> None:
        self._by_file.pop(path, None)
        self._read_to.pop(path, None)
        self._inode.pop(path, None)

    def _read_new(self, path: Path) -> None:
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if self._inode.get(path, st.st_ino) != st.st_ino or st.st_size < self._read_to.get(path, 0):
                    logger.warning("dashboard: {} was replaced or truncated; indexing it again", path)
                    self._forget(path)
                self._inode[path] = st.st_ino
                start = self._read_to.get(path, 0)
                fh.seek(start)
                chunk = fh.read()
        except OSError:  # removed between listing and reading
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
            except (ValueError, ValidationError, RecursionError) as exc:  # JSON, encoding, fields, nesting
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
        """Each ticker's newest decision (its BUY, when the loop bought on that bar and then re-decided it)."""
        latest: dict[str, Summary] = {}
        for s in representative(self.select(origin=origin)):
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
        try:
            with open(chosen.path, "rb") as fh:
                fh.seek(chosen.offset)
                record = json.loads(fh.readline())
        except (OSError, ValueError, RecursionError):  # pruned or rewritten since it was indexed
            return None
        return (record, len(matches)) if isinstance(record, dict) and record.get("decision_id") == decision_id else None


def funnel(summaries: list[Summary], unique: bool = True) -> dict[str, Any]:
    """How far the decisions got: per layer, how many reached it, passed, were discarded or failed.

    ``unique``: each decision id once (see ``representative``), since the loop re-records an unchanged
    bar every cycle; otherwise every record counts (what the LLM calls cost).
    """
    if unique:
        summaries = representative(summaries)
    reached, passed, errors = Counter(), Counter(), Counter()
    ended: Counter = Counter()
    by_day: dict[str, Counter] = {}
    for s in summaries:
        for name, ok, error in s.layers:
            reached[name] += 1
            passed[name] += ok
            errors[name] += bool(error)
        end = "BUY" if s.decision == "BUY" else (s.discarded_at or "HOLD")
        ended[end] += 1
        by_day.setdefault(s.day.isoformat(), Counter())[end] += 1
    stages = [{"stage": layer, "reached": reached[layer], "passed": passed[layer],
               "discarded": reached[layer] - passed[layer], "errors": errors[layer]} for layer in LAYER_NAMES]
    before_layers = sum(n for end, n in ended.items() if end not in ("BUY", "HOLD", "decision", "portfolio", *LAYER_NAMES))
    return {"decisions": len(summaries), "buy": ended["BUY"], "hold": len(summaries) - ended["BUY"],
            "stopped_before_layers": before_layers,
            "layers": stages, "blocked_after_layers": {k: ended[k] for k in ("decision", "portfolio")},
            "by_day": {day: dict(c) for day, c in sorted(by_day.items())}}
