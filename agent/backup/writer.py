"""Writing files into the archive: each one hashed as it is read, and each SQLite database as a consistent snapshot.

Side files of a database (-wal, -shm, -journal) are left out: the snapshot taken with SQLite's online
backup API already holds their committed rows. Links and special files are skipped and recorded.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import tarfile
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from agent.backup.layout import (
    SQLITE_SIDE_SUFFIXES,
    SQLITE_SUFFIXES,
    SQLITE_TIMEOUT_S,
    Emit,
)
from agent.errors import BackupError


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


class ArchiveWriter:
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


def dir_info(name: str, now: datetime) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o700, int(now.timestamp())
    return ti
