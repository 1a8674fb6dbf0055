"""Which archives are ours, and retention: delete those older than ``BACKUP_KEEP_DAYS``, always keeping the newest.

Age is read from the UTC timestamp in the name (``b3-agent-backup-YYYYmmddTHHMMSSZ[-N].tar.gz``), not from
the file's mtime; files that do not match the pattern are never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.backup.layout import ARCHIVE_RE, TS_FORMAT, Emit, say, utcnow


@dataclass(frozen=True, order=True)
class ArchiveInfo:
    taken_at: datetime
    seq: int
    path: Path = field(compare=False)


def parse_archive_name(name: str) -> tuple[datetime, int] | None:
    """``b3-agent-backup-20250630T210000Z-2.tar.gz`` -> (2025-06-30 21:00:00 UTC, 2); None if not ours."""
    m = ARCHIVE_RE.match(name)
    if not m:
        return None
    try:
        ts = datetime.strptime(m.group(1), TS_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return ts, int(m.group(2) or 0)


def list_archives(backup_dir: Path) -> list[ArchiveInfo]:
    """Our archives in ``backup_dir`` (regular files matching the name pattern), oldest first."""
    if not backup_dir.is_dir():
        return []
    found = []
    for entry in os.scandir(backup_dir):
        parsed = parse_archive_name(entry.name)
        if parsed and entry.is_file(follow_symlinks=False):
            found.append(ArchiveInfo(parsed[0], parsed[1], Path(entry.path)))
    return sorted(found)


def apply_retention(backup_dir: Path, keep_days: int, *, now: datetime | None = None,
                    emit: Emit = say) -> list[Path]:
    """Delete our archives whose name timestamp is more than ``keep_days`` days old; keep the newest always."""
    archives = list_archives(backup_dir)
    if not archives:
        return []
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    newest = archives[-1]
    deleted = []
    for info in archives:
        if info is newest or info.taken_at >= cutoff:
            continue
        info.path.unlink()
        deleted.append(info.path)
        emit(f"deleted old backup: {info.path.name} ({info.taken_at:%Y-%m-%d %H:%M} UTC, older than {keep_days} days)")
    return deleted
