"""What a backup is: where the agent's state lives, how archives are named and laid out, and the manifest format.

Archive layout (one top-level folder, so a manual ``tar xzf`` never spills over the live files)::

    b3-agent-backup-20250630T210000Z/
        MANIFEST.json   created_at, agent version, the original absolute paths, every file with size + sha256
        logs/           the LOG_DIR tree (trading-agent.log*, errors.log, trades.jsonl, YYYY-MM/DD.jsonl, ...)
        data/           the directory of DATABASE_PATH; each *.db / *.sqlite / *.sqlite3 is a consistent
                        snapshot taken with SQLite's online backup API (committed rows still in the -wal file
                        included), and the -wal / -shm / -journal side files are left out
        .env            when present

SECURITY: the archive holds ``.env``, that is, secrets (API tokens, passwords). It is created with file
mode 0600 (owner read/write only) in a BACKUP_DIR created with mode 0700; keep it that way when copying
it elsewhere. Nothing here ever prints the contents of ``.env``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from agent.config import DEFAULT_ENV_PATH, Settings

PREFIX = "b3-agent-backup-"
SUFFIX = ".tar.gz"
TS_FORMAT = "%Y%m%dT%H%M%SZ"
ARCHIVE_RE = re.compile(r"^b3-agent-backup-(\d{8}T\d{6}Z)(?:-(\d{1,6}))?\.tar\.gz$")
MANIFEST = "MANIFEST.json"
FORMAT = "b3-agent-backup"
FORMAT_VERSION = 1
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SQLITE_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
SECTIONS = ("logs", "data", "env")  # manifest keys; archive names: logs/, data/, .env
ARC_NAME = {"logs": "logs", "data": "data", "env": ".env"}
SQLITE_TIMEOUT_S = 30.0

Emit = Callable[[str], None]


def say(line: str) -> None:
    print(line, flush=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@dataclass(frozen=True)
class Paths:
    """Where the state lives (absolute) and where archives go."""

    logs: Path
    data: Path
    env: Path
    backup_dir: Path
    database_file: str = "agent.db"

    @classmethod
    def from_settings(cls, settings: Settings, env_path: Path = DEFAULT_ENV_PATH) -> Paths:
        db = settings.ledger_path.absolute()
        return cls(logs=settings.logging.dir.absolute(), data=db.parent, env=Path(env_path).absolute(),
                   backup_dir=settings.backup.dir.absolute(), database_file=db.name)
