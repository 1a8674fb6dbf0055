"""Back up and restore the agent's state: the log dir, the data dir and ``.env``.

``python -m agent.backup create`` (``make backup``) writes
``BACKUP_DIR/b3-agent-backup-YYYYmmddTHHMMSSZ.tar.gz`` (UTC; ``-1``, ``-2``... when the name is taken),
then deletes archives of that name pattern older than ``BACKUP_KEEP_DAYS`` days (by the timestamp in
the name), always keeping the newest one. Files that do not match the pattern are never touched.

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

``restore ARCHIVE [--target DIR] [--force]`` checks every file against the manifest's sha256, refuses
unsafe members (absolute paths, ``..``, links, devices), runs ``PRAGMA integrity_check`` on each restored
SQLite file, and only then moves the files into place: LOG_DIR, the data dir and the project ``.env``, or
``DIR/logs``, ``DIR/data`` and ``DIR/.env`` with ``--target``. Existing files are never overwritten: without
``--force`` the restore is refused; with it they are first renamed to ``<name>.pre-restore-<timestamp>``.
Stop the agent (``make run``) before restoring over its live files.

Exit codes: 0 success, 1 operational error (one line on stderr), 2 configuration error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import sqlite3
import stat
import sys
import tarfile
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable

from agent import __version__
from agent.config import DEFAULT_ENV_PATH, PROJECT_ROOT, Settings, load_settings
from agent.errors import AgentError, ConfigError

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2

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


class BackupError(AgentError):
    """A backup or restore cannot go on. Action: print the one-line message and exit 1."""


def _say(line: str) -> None:
    print(line, flush=True)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------- naming


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
                    emit: Emit = _say) -> list[Path]:
    """Delete our archives whose name timestamp is more than ``keep_days`` days old; keep the newest always."""
    archives = list_archives(backup_dir)
    if not archives:
        return []
    cutoff = (now or _utcnow()) - timedelta(days=keep_days)
    newest = archives[-1]
    deleted = []
    for info in archives:
        if info is newest or info.taken_at >= cutoff:
            continue
        info.path.unlink()
        deleted.append(info.path)
        emit(f"deleted old backup: {info.path.name} ({info.taken_at:%Y-%m-%d %H:%M} UTC, older than {keep_days} days)")
    return deleted


# --------------------------------------------------------------------------------------------- create


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
        db = settings.database_path.absolute()
        return cls(logs=settings.logging.dir.absolute(), data=db.parent, env=Path(env_path).absolute(),
                   backup_dir=settings.backup.dir.absolute(), database_file=db.name)


class _HashingReader:
    """Reads at most ``size`` bytes of ``fh`` (a file that grows while read stays consistent), hashing them."""

    def __init__(self, fh: BinaryIO, size: int):
        self.fh, self.left, self.sha = fh, size, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.left:
            n = self.left
        data = self.fh.read(n)
        self.left -= len(data)
        self.sha.update(data)
        return data


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def _check_not_too_broad(name: str, directory: Path) -> None:
    """Refuse to archive the project itself, the home directory or one of their ancestors."""
    real = directory.resolve()
    for guard in {PROJECT_ROOT.resolve(), Path.cwd().resolve(), Path.home().resolve()}:
        if _is_within(guard, real):
            raise BackupError(f"the {name} directory {directory} is (or contains) {guard}: refusing to archive it; "
                              f"point it at a dedicated folder such as data/ or logs/")


def _is_sqlite_name(name: str) -> bool:
    return name.lower().endswith(SQLITE_SUFFIXES)


def _is_sqlite_side(name: str) -> bool:
    low = name.lower()
    return any(low.endswith(s + side) for s in SQLITE_SUFFIXES for side in SQLITE_SIDE_SUFFIXES)


def _snapshot_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (WAL content included) via the online backup API.

    The source is opened like any client (``mode=rw``, never created), so that when no one else has it
    open, closing tidies its -wal/-shm files away; ``mode=ro`` is the fallback for a read-only file.
    """
    uri = src.resolve().as_uri()
    for mode in ("rw", "ro"):
        try:
            with closing(sqlite3.connect(f"{uri}?mode={mode}", uri=True, timeout=SQLITE_TIMEOUT_S)) as s:
                with closing(sqlite3.connect(dst)) as d:
                    s.backup(d)
            return
        except sqlite3.OperationalError as exc:
            if mode == "ro" or not ("readonly" in str(exc) or "unable to open" in str(exc)):
                raise
            dst.unlink(missing_ok=True)


class _Writer:
    """Adds files to an open tar, recording each one for the manifest."""

    def __init__(self, tar: tarfile.TarFile, root: str, staging: Path, emit: Emit):
        self.tar, self.root, self.staging, self.emit = tar, root, staging, emit
        self.files: list[dict[str, Any]] = []
        self.dirs: list[str] = []
        self.skipped: list[dict[str, str]] = []
        self._snapshots = 0

    def _info(self, arcname: str, st: os.stat_result, *, mode: int | None = None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(f"{self.root}/{arcname}")
        ti.mtime = int(st.st_mtime)
        ti.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def add_dir(self, arcname: str, path: Path) -> None:
        ti = self._info(arcname, path.stat())
        ti.type = tarfile.DIRTYPE
        self.tar.addfile(ti)
        self.dirs.append(arcname)

    def add_file(self, arcname: str, path: Path, *, kind: str = "file", mode: int | None = None,
                 shown: Path | None = None) -> None:
        try:
            fh = open(path, "rb")
        except FileNotFoundError:  # rotated away between listing and reading
            self.skipped.append({"path": str(shown or path), "reason": "vanished while the backup ran"})
            return
        with fh:
            st = os.fstat(fh.fileno())
            ti = self._info(arcname, st, mode=mode)
            ti.size = st.st_size
            reader = _HashingReader(fh, st.st_size)
            try:
                self.tar.addfile(ti, reader)  # type: ignore[arg-type]
            except OSError as exc:
                raise BackupError(f"{shown or path} changed while being archived ({exc}); run the backup again") from exc
        self.files.append({"path": arcname, "size": st.st_size, "sha256": reader.sha.hexdigest(), "kind": kind})

    def add_tree(self, arcname: str, top: Path, exclude: list[Path]) -> None:
        """Every regular file and directory under ``top``; ``exclude`` directories (resolved) are left out."""
        self.add_dir(arcname, top)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            here = Path(dirpath)
            rel = here.relative_to(top)
            base = arcname if rel == Path(".") else f"{arcname}/{rel.as_posix()}"
            for d in sorted(dirnames):
                p = here / d
                if p.is_symlink():
                    self.skipped.append({"path": str(p), "reason": "symbolic link (not followed)"})
                    dirnames.remove(d)
                elif p.resolve() in exclude:
                    self.skipped.append({"path": str(p), "reason": "archived separately or is the backup dir"})
                    dirnames.remove(d)
            dirnames.sort()
            for d in dirnames:
                self.add_dir(f"{base}/{d}", here / d)
            for f in sorted(filenames):
                p = here / f
                try:
                    st = p.lstat()
                except FileNotFoundError:
                    st = None
                if st is None:
                    self.skipped.append({"path": str(p), "reason": "vanished while the backup ran"})
                elif not stat.S_ISREG(st.st_mode):
                    self.skipped.append({"path": str(p), "reason": "not a regular file (link, socket, fifo...)"})
                elif _is_sqlite_side(f):
                    self.skipped.append({"path": str(p), "reason": "SQLite side file: its content is in the snapshot"})
                elif _is_sqlite_name(f):
                    self._add_sqlite(f"{base}/{f}", p, st)
                else:
                    self.add_file(f"{base}/{f}", p)

    def _add_sqlite(self, arcname: str, path: Path, st: os.stat_result) -> None:
        self._snapshots += 1
        snap = self.staging / f"{self._snapshots}.sqlite"
        try:
            _snapshot_sqlite(path, snap)
        except sqlite3.DatabaseError as exc:
            snap.unlink(missing_ok=True)
            if "not a database" not in str(exc):
                raise BackupError(f"{path}: SQLite backup failed: {exc}") from exc
            self.emit(f"warning: {path} is named like a database but is not SQLite; copied as a plain file")
            self.add_file(arcname, path)
            return
        os.utime(snap, (st.st_atime, st.st_mtime))
        self.add_file(arcname, snap, kind="sqlite", mode=stat.S_IMODE(st.st_mode), shown=path)
        snap.unlink()


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


def create_backup(paths: Paths, *, now: datetime | None = None, emit: Emit = _say) -> Path:
    """Write one archive into ``paths.backup_dir`` and return its path (see the module docstring)."""
    now = (now or _utcnow()).astimezone(timezone.utc)
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
                w = _Writer(tar, root, Path(staging), emit)
                tar.addfile(_dir_info(root, now))
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
    emit(f"backup written: {final} ({len(w.files)} files, {_human(size)}, mode 0600{secret})")
    if dbs:
        emit(f"  SQLite snapshots (online backup API): {', '.join(dbs)}")
    if absent:
        emit(f"  absent, recorded in the manifest: {', '.join(absent)}")
    return final


def _dir_info(name: str, now: datetime) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o700, int(now.timestamp())
    return ti


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------------------------- restore


@dataclass
class Staged:
    """An archive extracted and verified into ``dir``: ``dir/logs``, ``dir/data``, ``dir/.env``."""

    dir: Path
    manifest: dict[str, Any]
    sections: list[str]
    databases: list[str]


def _member_parts(m: tarfile.TarInfo) -> list[str]:
    """The member's path components, or BackupError when the member is not safe to extract."""
    name = m.name
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name or "\x00" in name:
        raise BackupError(f"unsafe archive member {name!r} (absolute path): refusing to restore")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BackupError(f"unsafe archive member {name!r} (path traversal): refusing to restore")
    if not (m.isreg() or m.isdir()):
        raise BackupError(f"unsafe archive member {name!r} (link or special file): refusing to restore")
    return parts


def _validate_members(members: list[tarfile.TarInfo], staging: Path) -> tuple[str, list[tuple[tarfile.TarInfo, list[str]]]]:
    """All members checked before anything is written: one root folder, known sections, no duplicates."""
    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.11.4+: a second opinion
    checked, seen, roots = [], set(), set()
    for m in members:
        parts = _member_parts(m)
        if data_filter is not None:
            try:
                data_filter(m, str(staging))
            except tarfile.FilterError as exc:
                raise BackupError(f"unsafe archive member {m.name!r} ({exc}): refusing to restore") from None
        roots.add(parts[0])
        rel = parts[1:]
        if not rel and not m.isdir():
            raise BackupError(f"unexpected archive member {m.name!r}: not a b3-agent backup")
        if rel:
            ok = ((rel == [MANIFEST] and m.isreg()) or (rel == [".env"] and m.isreg())
                  or (rel[0] in ("logs", "data") and (len(rel) > 1 or m.isdir())))
            if not ok:
                raise BackupError(f"unexpected archive member {m.name!r}: not a b3-agent backup")
        key = "/".join(parts)
        if key in seen:
            raise BackupError(f"archive member {m.name!r} appears twice: refusing to restore")
        seen.add(key)
        checked.append((m, rel))
    if len(roots) != 1:
        raise BackupError(f"expected one top-level folder in the archive, found {len(roots)}: not a b3-agent backup")
    return roots.pop(), checked


def stage_archive(archive: Path, staging: Path) -> Staged:
    """Extract ``archive`` into the empty dir ``staging``, checking every member, checksum and database."""
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except FileNotFoundError:
        raise BackupError(f"archive not found: {archive}") from None
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{archive} is not a readable .tar.gz backup: {exc}") from None
    hashes: dict[str, tuple[int, str]] = {}
    dir_modes: dict[Path, int] = {}
    manifest_bytes = None
    try:
        with tar:
            root, checked = _validate_members(tar.getmembers(), staging)
            for m, rel in checked:
                if not rel or m.isdir():
                    if rel:
                        staging.joinpath(*rel).mkdir(mode=0o700, parents=True, exist_ok=True)
                        dir_modes[staging.joinpath(*rel)] = (stat.S_IMODE(m.mode) & 0o777) | 0o700
                    continue
                src = tar.extractfile(m)
                if src is None:  # pragma: no cover - regular files always have data
                    raise BackupError(f"cannot read archive member {m.name!r}")
                if rel == [MANIFEST]:
                    manifest_bytes = src.read(64 << 20)
                    continue
                dest = staging.joinpath(*rel)
                if not _is_within(dest.resolve(), staging.resolve()):
                    raise BackupError(f"unsafe archive member {m.name!r}: refusing to restore")
                dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                mode = 0o600 if rel == [".env"] else (stat.S_IMODE(m.mode) & 0o777) | 0o600
                sha, size = hashlib.sha256(), 0
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(1 << 20):
                        sha.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                os.chmod(dest, mode)
                os.utime(dest, (m.mtime, m.mtime))
                hashes["/".join(rel)] = (size, sha.hexdigest())
            for d, mode in dir_modes.items():
                os.chmod(d, mode)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"cannot extract {archive} (damaged archive or no space?): {exc}") from None

    if manifest_bytes is None:
        raise BackupError(f"{archive} has no {MANIFEST}: not a b3-agent backup")
    try:
        manifest = json.loads(manifest_bytes)
        listed = {f["path"]: (int(f["size"]), str(f["sha256"])) for f in manifest["files"]}
        kinds = {f["path"]: f.get("kind", "file") for f in manifest["files"]}
        sources = manifest["sources"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{archive}: {MANIFEST} is unreadable ({exc!r})") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{archive}: unknown backup format {manifest.get('format')!r} v{manifest.get('format_version')}")
    if manifest.get("root") != root:
        raise BackupError(f"{archive}: the manifest names root {manifest.get('root')!r}, the archive has {root!r}")
    for path in sorted(set(listed) | set(hashes)):
        if path not in hashes:
            raise BackupError(f"checksum check failed: {path} is in the manifest but not in the archive")
        if path not in listed:
            raise BackupError(f"checksum check failed: {path} is in the archive but not in the manifest")
        if hashes[path] != listed[path]:
            raise BackupError(f"checksum check failed for {path}: the archive is corrupted or was modified")

    databases = sorted(p for p, k in kinds.items() if k == "sqlite")
    for rel in databases:
        result = _integrity_check(staging / rel)
        if result != "ok":
            raise BackupError(f"PRAGMA integrity_check failed for {rel}: {result}")
    sections = [s for s in SECTIONS if sources.get(s, {}).get("present")]
    for s in sections:  # an empty log dir is still restored as a folder
        if s != "env":
            (staging / ARC_NAME[s]).mkdir(mode=0o700, exist_ok=True)
    return Staged(staging, manifest, sections, databases)


def _integrity_check(path: Path) -> str:
    try:
        # read-write on the staged copy, so that closing removes the -wal/-shm files the check creates
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)) as con:
            rows = con.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    return "; ".join(str(r[0]) for r in rows)[:300]


def _occupied(path: Path) -> bool:
    """True when restoring to ``path`` would replace something (an empty folder does not count)."""
    if path.is_symlink() or path.is_file():
        return True
    return path.is_dir() and any(path.iterdir())


def _aside_name(path: Path, stamp: str) -> Path:
    candidate = path.with_name(f"{path.name}.pre-restore-{stamp}")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.pre-restore-{stamp}-{n}")
        n += 1
    return candidate


@dataclass
class RestoreResult:
    restored: dict[str, Path]
    moved_aside: dict[str, Path]
    databases: list[str]
    manifest: dict[str, Any]


def restore_backup(archive: Path, destinations: dict[str, Path], *, force: bool = False,
                   now: datetime | None = None, emit: Emit = _say) -> RestoreResult:
    """Restore ``archive`` to ``destinations`` (keys ``logs``, ``data``, ``env``: absolute paths).

    Nothing is written to a destination until the whole archive is verified.
    """
    destinations = {k: Path(v).absolute() for k, v in destinations.items()}
    stamp = (now or _utcnow()).astimezone(timezone.utc).strftime(TS_FORMAT)
    staging_parent = destinations["data"].parent
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".b3-restore-", dir=staging_parent))
    try:
        staged = stage_archive(archive, staging)
        busy = [destinations[s] for s in staged.sections if _occupied(destinations[s])]
        if busy and not force:
            raise BackupError(f"refusing to overwrite {', '.join(str(b) for b in busy)}; "
                              f"rerun with --force to move them aside first, or use --target DIR")
        # outer folders first, so that a log dir inside the data dir (or the reverse) lands in the right place
        order = sorted(staged.sections, key=lambda s: len(destinations[s].parts))
        moved: dict[str, Path] = {}
        for s in order:
            dest = destinations[s]
            if _occupied(dest):
                aside = _aside_name(dest, stamp)
                os.rename(dest, aside)
                moved[s] = aside
                emit(f"moved aside: {dest} -> {aside.name}")
            elif dest.is_dir():
                dest.rmdir()  # empty
        restored = {}
        for s in order:
            dest = destinations[s]
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() or dest.is_symlink():
                raise BackupError(f"{dest} appeared while restoring; nothing was overwritten, restore again")
            shutil.move(str(staging / ARC_NAME[s]), str(dest))
            restored[s] = dest
        return RestoreResult(restored, moved, staged.databases, staged.manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify_backup(archive: Path) -> Staged:
    """Check an archive (members, checksums, SQLite integrity) without restoring anything."""
    with tempfile.TemporaryDirectory(prefix=".b3-verify-", dir=archive.parent if archive.parent.is_dir() else None) as d:
        staged = stage_archive(archive, Path(d))
        return Staged(Path(archive), staged.manifest, staged.sections, staged.databases)


# --------------------------------------------------------------------------------------------- CLI


COMMANDS = ("create", "list", "verify", "restore")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: config.yaml in the project)")
    common.add_argument("--env-file", type=Path, default=DEFAULT_ENV_PATH,
                        help="the .env to read settings from, back up and restore (default: the project .env)")
    dirs = argparse.ArgumentParser(add_help=False)
    dirs.add_argument("--backup-dir", type=Path, help="where archives go (env BACKUP_DIR)")

    p = argparse.ArgumentParser(prog="python -m agent.backup", description=__doc__.split("\n\n")[0],
                                epilog="with no command: create")
    sub = p.add_subparsers(dest="command", metavar="{create,list,verify,restore}")
    c = sub.add_parser("create", parents=[common, dirs],
                       help="archive logs, data and .env into BACKUP_DIR, then apply retention")
    c.add_argument("--keep-days", type=int, help="delete archives older than this many days (env BACKUP_KEEP_DAYS)")
    sub.add_parser("list", parents=[common, dirs], help="list the archives in BACKUP_DIR")
    v = sub.add_parser("verify", parents=[common, dirs], help="check an archive without restoring it")
    v.add_argument("archive", help="a path, a file name in BACKUP_DIR, or 'latest'")
    r = sub.add_parser("restore", parents=[common, dirs], help="restore an archive (refuses to overwrite)")
    r.add_argument("archive", help="a path, a file name in BACKUP_DIR, or 'latest'")
    r.add_argument("--target", type=Path, help="restore under DIR (DIR/logs, DIR/data, DIR/.env) instead of in place")
    r.add_argument("--force", action="store_true",
                   help="move existing logs/data/.env aside to <name>.pre-restore-<timestamp>, then restore")
    return p


def _resolve_archive(arg: str, settings_loader: Callable[[], Settings]) -> Path:
    path = Path(arg)
    if arg != "latest" and path.exists():
        return path
    backup_dir = settings_loader().backup.dir
    if arg == "latest":
        archives = list_archives(backup_dir)
        if not archives:
            raise BackupError(f"no backups in {backup_dir.absolute()}")
        return archives[-1].path
    if (backup_dir / arg).exists():
        return backup_dir / arg
    raise BackupError(f"archive not found: {arg} (nor in {backup_dir.absolute()})")


def _cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    paths = Paths.from_settings(settings, args.env_file)
    create_backup(paths)
    deleted = apply_retention(paths.backup_dir, settings.backup.keep_days)
    kept = len(list_archives(paths.backup_dir))
    _say(f"retention: keep {settings.backup.keep_days} days (newest always kept): "
         f"{len(deleted)} deleted, {kept} kept")
    return EXIT_OK


def _cmd_list(settings: Settings) -> int:
    backup_dir = settings.backup.dir.absolute()
    archives = list_archives(backup_dir)
    if not archives:
        _say(f"no backups in {backup_dir}")
        return EXIT_OK
    _say(f"backups in {backup_dir} (keep {settings.backup.keep_days} days, newest always kept):")
    for info in reversed(archives):
        _say(f"  {info.path.name}  {info.taken_at:%Y-%m-%d %H:%M:%S} UTC  {_human(info.path.stat().st_size):>10}")
    return EXIT_OK


def _cmd_verify(archive: Path) -> int:
    staged = verify_backup(archive)
    files = staged.manifest["files"]
    _say(f"ok: {archive} ({len(files)} files, checksums match; created {staged.manifest['created_at']}; "
         f"sections: {', '.join(ARC_NAME[s] for s in staged.sections) or 'none'}; "
         f"SQLite integrity ok: {', '.join(staged.databases) or 'no databases'})")
    return EXIT_OK


def _cmd_restore(args: argparse.Namespace, archive: Path, settings: Settings | None) -> int:
    if args.target is not None:
        base = args.target.absolute()
        dest = {"logs": base / "logs", "data": base / "data", "env": base / ".env"}
    else:
        assert settings is not None
        p = Paths.from_settings(settings, args.env_file)
        dest = {"logs": p.logs, "data": p.data, "env": p.env}
    result = restore_backup(archive, dest, force=args.force)
    _say(f"restored {archive.name} (checksums verified):")
    for s, where in result.restored.items():
        _say(f"  {ARC_NAME[s]:<5} -> {where}")
    if result.databases:
        _say(f"  PRAGMA integrity_check ok: {', '.join(result.databases)}")
    _say("next steps:")
    if "env" in result.restored:
        _say("  - the restored .env holds secrets: keep it private (mode 0600); check its keys before starting")
    if args.target is not None:
        _say(f"  - the files are under {args.target.absolute()}; to run on them, stop the agent and move them into "
             f"place, or set LOG_DIR={dest['logs']} and "
             f"DATABASE_PATH={dest['data'] / result.manifest['sources']['data'].get('database_file', 'agent.db')}")
    else:
        _say("  - start the agent again: make run")
    if result.moved_aside:
        _say("  - the previous files were kept: " + ", ".join(str(p) for p in result.moved_aside.values())
             + " (delete them once the restore looks right)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "create")
    args = _parser().parse_args(argv)

    def settings_loader() -> Settings:
        return load_settings(args.config, env_file=args.env_file,
                             overrides={("backup", "dir"): args.backup_dir,
                                        ("backup", "keep_days"): getattr(args, "keep_days", None)})

    try:
        if args.command == "restore":
            # With --target and an archive path, the current config is not needed: a broken .env
            # (perhaps the reason to restore) must not stand in the way.
            archive = _resolve_archive(args.archive, settings_loader)
            settings = None if args.target is not None else settings_loader()
            return _cmd_restore(args, archive, settings)
        if args.command == "verify":
            return _cmd_verify(_resolve_archive(args.archive, settings_loader))
        settings = settings_loader()
        if args.command == "list":
            return _cmd_list(settings)
        return _cmd_create(args, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "restore":
            print("hint: to restore a .env that breaks the config, use an archive path with --target DIR",
                  file=sys.stderr)
        return EXIT_CONFIG
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, sqlite3.Error, tarfile.TarError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
