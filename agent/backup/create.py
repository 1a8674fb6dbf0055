"""``python -m agent.backup create``: one archive of the log dir, the data dir and ``.env`` into BACKUP_DIR.

The archive is written to a temp file (mode 0600), fsynced, and only then given its final name
``b3-agent-backup-YYYYmmddTHHMMSSZ.tar.gz`` (UTC; ``-1``, ``-2``... when the name is taken), so a crash
never leaves a half archive under an archive's name.
"""

from __future__ import annotations

import io
import json
import os
import platform
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from agent import __version__
from agent.backup.layout import (
    ARC_NAME,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PREFIX,
    SECTIONS,
    SUFFIX,
    TS_FORMAT,
    Emit,
    Paths,
    human_size,
    is_within,
    say,
    utcnow,
)
from agent.backup.writer import ArchiveWriter, dir_info
from agent.config import PROJECT_ROOT
from agent.errors import BackupError


def _check_not_too_broad(name: str, directory: Path) -> None:
    """Refuse to archive the project itself, the home directory or one of their ancestors."""
    real = directory.resolve()
    for guard in {PROJECT_ROOT.resolve(), Path.cwd().resolve(), Path.home().resolve()}:
        if is_within(guard, real):
            raise BackupError(f"the {name} directory {directory} is (or contains) {guard}: refusing to archive it; "
                              f"point it at a dedicated folder such as data/ or logs/")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, backup_dir: Path, stamp: str) -> Path:
    """Give the finished temp file its final name without ever replacing an existing archive."""
    for n in range(0, 1000):
        final = backup_dir / f"{PREFIX}{stamp}{'' if n == 0 else f'-{n}'}{SUFFIX}"
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError:  # no hard links on this filesystem
            if final.exists():
                continue
            os.replace(tmp, final)
            return final
        tmp.unlink()
        return final
    raise BackupError(f"no free archive name for {stamp} in {backup_dir}")


def create_backup(paths: Paths, *, now: datetime | None = None, emit: Emit = say) -> Path:
    """Write one archive into ``paths.backup_dir`` and return its path (see the module docstring)."""
    now = (now or utcnow()).astimezone(timezone.utc)
    stamp = now.strftime(TS_FORMAT)
    root = f"{PREFIX}{stamp}"
    present = {"logs": paths.logs.is_dir(), "data": paths.data.is_dir(), "env": paths.env.is_file()}
    if not any(present.values()):
        raise BackupError(f"nothing to back up: no log dir {paths.logs}, no data dir {paths.data}, no {paths.env}")
    for name in ("logs", "data"):
        if present[name]:
            _check_not_too_broad(name, getattr(paths, name))
    if present["logs"] and present["data"] and paths.logs.resolve() == paths.data.resolve():
        raise BackupError(f"the log dir and the data dir are the same folder ({paths.logs}); give them separate folders")

    backup_dir = paths.backup_dir
    for name in ("logs", "data"):
        if present[name] and backup_dir.resolve() == getattr(paths, name).resolve():
            raise BackupError(f"the backup dir {backup_dir} is the {name} dir itself; "
                              f"use its own folder (BACKUP_DIR, default backups/)")
    try:
        backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup dir {backup_dir}: {exc}") from exc
    backup_real = backup_dir.resolve()

    fd, tmp_name = tempfile.mkstemp(prefix=f".{root}.", suffix=".tmp", dir=backup_dir)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw, \
                tempfile.TemporaryDirectory(prefix=".staging-", dir=backup_dir) as staging:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
                w = ArchiveWriter(tar, root, Path(staging), emit)
                tar.addfile(dir_info(root, now))
                if present["logs"]:
                    w.add_tree("logs", paths.logs, [backup_real, paths.data.resolve()])
                if present["data"]:
                    w.add_tree("data", paths.data, [backup_real, paths.logs.resolve()])
                if present["env"]:
                    w.add_file(".env", paths.env, mode=0o600)
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "agent_version": __version__,
                    "python": platform.python_version(),
                    "root": root,
                    "sources": {
                        "logs": {"path": str(paths.logs), "present": present["logs"]},
                        "data": {"path": str(paths.data), "present": present["data"],
                                 "database_file": paths.database_file},
                        "env": {"path": str(paths.env), "present": present["env"]},
                    },
                    "files": w.files,
                    "dirs": w.dirs,
                    "skipped": w.skipped,
                }
                body = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
                ti = tarfile.TarInfo(f"{root}/{MANIFEST}")
                ti.size, ti.mtime, ti.mode = len(body), int(now.timestamp()), 0o600
                tar.addfile(ti, io.BytesIO(body))
            raw.flush()
            os.fsync(raw.fileno())
        final = _publish(tmp, backup_dir, stamp)
        _fsync_dir(backup_dir)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

    size = final.stat().st_size
    dbs = [f["path"] for f in w.files if f["kind"] == "sqlite"]
    absent = [ARC_NAME[s] for s in SECTIONS if not present[s]]
    secret = ", it holds .env secrets" if present["env"] else ""
    emit(f"backup written: {final} ({len(w.files)} files, {human_size(size)}, mode 0600{secret})")
    if dbs:
        emit(f"  SQLite snapshots (online backup API): {', '.join(dbs)}")
    if absent:
        emit(f"  absent, recorded in the manifest: {', '.join(absent)}")
    return final
