"""Restore and verify: every member, checksum and database is checked before anything is moved into place.

``restore`` refuses unsafe members (absolute paths, ``..``, links, devices), checks every file against the
manifest's sha256, runs ``PRAGMA integrity_check`` on each restored SQLite file, and only then moves the
files into place. Existing files are never overwritten: without ``force`` the restore is refused; with it
they are first renamed to ``<name>.pre-restore-<timestamp>``. Stop the agent before restoring over its
live files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.backup.layout import (
    ARC_NAME,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SECTIONS,
    TS_FORMAT,
    Emit,
    is_within,
    say,
    utcnow,
)
from agent.errors import BackupError


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
                if not is_within(dest.resolve(), staging.resolve()):
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
    except RecursionError:  # json's parser recurses once per nesting level: a hostile manifest exhausts the stack
        raise BackupError(f"{archive}: {MANIFEST} is nested too deeply to be a b3-agent manifest") from None
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
                   now: datetime | None = None, emit: Emit = say) -> RestoreResult:
    """Restore ``archive`` to ``destinations`` (keys ``logs``, ``data``, ``env``: absolute paths).

    Nothing is written to a destination until the whole archive is verified.
    """
    destinations = {k: Path(v).absolute() for k, v in destinations.items()}
    stamp = (now or utcnow()).astimezone(timezone.utc).strftime(TS_FORMAT)
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
