"""Append-only JSONL: one flushed line per record, never rewritten.

A crash can leave a truncated last line. Readers skip it (with a warning) and writers start
a fresh line after it, so one torn write never corrupts the records that follow.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from loguru import logger

from agent.market.calendar import B3_TZ


def append_jsonl(path: Path, record: dict[str, Any], fsync: bool = False) -> None:
    """Append one JSON line and flush it. Starts a new line if the file ends in a torn write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    with open(path, "a+b") as fh:
        fh.seek(0, os.SEEK_END)
        prefix = b""
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                prefix = b"\n"  # the previous writer died mid-line
        fh.write(prefix + line.encode("utf-8") + b"\n")
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record in the file. A torn or corrupt line is skipped with a warning."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                torn = not raw.endswith(b"\n")
                logger.warning("{}:{}: skipped {} line", path, lineno, "truncated last" if torn else "corrupt")
                continue
            if isinstance(obj, dict):
                yield obj


class DecisionSink:
    """Decision records under ``LOG_DIR/YYYY-MM/DD.jsonl`` (B3 local date of the record's ``ts``)."""

    def __init__(self, log_dir: Path, fsync: bool = False):
        self.log_dir = Path(log_dir)
        self.fsync = fsync
        self._lock = threading.Lock()

    def path_for(self, ts: datetime) -> Path:
        local = ts.astimezone(B3_TZ)
        return self.log_dir / f"{local:%Y-%m}" / f"{local:%d}.jsonl"

    def write(self, record: dict[str, Any]) -> Path:
        path = self.path_for(datetime.fromisoformat(record["ts"]))
        with self._lock:
            append_jsonl(path, record, self.fsync)
        return path

    def files(self) -> list[tuple[date, Path]]:
        """Every daily record file with its B3 date, oldest first (anything else in LOG_DIR is ignored)."""
        out = []
        for path in self.log_dir.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]/[0-9][0-9].jsonl"):
            try:
                out.append((date.fromisoformat(f"{path.parent.name}-{path.stem}"), path))
            except ValueError:
                continue
        return sorted(out)

    def records(self, since: date | None = None) -> Iterator[dict[str, Any]]:
        for day, path in self.files():
            if since is None or day >= since:
                yield from read_jsonl(path)

    def prune(self, retention_days: int, today: date) -> list[Path]:
        """Delete daily files older than ``retention_days`` (LOG_RETENTION_DAYS) and empty month folders."""
        cutoff = today - timedelta(days=retention_days)
        removed = []
        with self._lock:
            for day, path in self.files():
                if day < cutoff:
                    path.unlink()
                    removed.append(path)
            for month in {p.parent for p in removed}:
                if not any(month.iterdir()):
                    month.rmdir()
        if removed:
            logger.info("retention: removed {} decision file(s) older than {} days", len(removed), retention_days)
        return removed
