"""Start-up checks of the places the agent writes (LOG_DIR, DATABASE_PATH, LLM_CACHE_PATH).

A folder that is a file, a read-only disk or a database file that is not one must stop the agent
with exit 2 and a line naming the key, never with a traceback from deep inside logging or SQLite.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agent.errors import ConfigError

_REASONS = {errno.EROFS: "is on a read-only file system", errno.EACCES: "is not writable (permission denied)",
            errno.EPERM: "is not writable (operation not permitted)", errno.ENOSPC: "is on a full disk"}


def _blocking_file(path: Path) -> Path | None:
    """The file that stands where ``path`` or one of its parents should be a folder, if any."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def _read_only(folder: Path) -> str | None:
    """Why nothing can be written in ``folder`` (or its nearest existing parent), if that is the case."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None:
        return None
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"is read-only ({existing} is on a read-only file system)"
    if not os.access(existing, os.W_OK):
        return f"is read-only ({existing} is not writable)"
    return None


def storage_error(key: str, path: Path, exc: BaseException) -> ConfigError:
    """A ConfigError naming ``key`` and saying what is wrong with ``path`` in words."""
    where = Path(path).absolute()
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        what = (f"is not a usable SQLite database ({exc}): a damaged or foreign file. Restore it from a backup "
                "(python -m agent.backup restore latest), or move it away to start a fresh one")
    elif isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        what = "is read-only (the agent must write its ledger)"
    elif isinstance(exc, OSError) and exc.errno in _REASONS:
        what = _REASONS[exc.errno]
    elif (blocker := _blocking_file(where.parent if key != "LOG_DIR" else where)) is not None:
        what = "is a file, not a folder" if blocker == where else f"is under {blocker}, which is a file"
    elif (why := _read_only(where if key == "LOG_DIR" else where.parent)) is not None:
        what = why
    else:
        what = f"cannot be used: {exc}"
    return ConfigError(f"{key}: {where} {what}")


def writable_dir(path: Path, key: str) -> Path:
    """Create ``path`` if needed and prove a file can be written in it; ConfigError naming ``key`` if not."""
    path = Path(path)
    blocker = _blocking_file(path)
    if blocker is not None:
        what = "is a file, not a folder" if blocker == path else f"is under {blocker}, which is a file"
        raise ConfigError(f"{key}: {path.absolute()} {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise storage_error(key, path, exc) from None
    return path


def check_sqlite_file(path: Path, key: str) -> None:
    """Refuse a ledger path SQLite cannot use: not a regular file (``/dev/null``), in a folder that is a file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ConfigError(f"{key}: {path.absolute()} is {kind}; give a database file, or a folder to hold "
                          f"{path.name if path.suffix else 'agent.db'}")
    if not os.path.lexists(path):
        writable_dir(path.parent, key)


@contextmanager
def ledger_errors(ledger: Path) -> Iterator[None]:
    """A ledger SQLite finds damaged past its first page fails at its first query: at start-up that is a
    ConfigError naming DATABASE_PATH too, as a file SQLite refuses outright already is."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise storage_error("DATABASE_PATH", ledger, exc) from None
