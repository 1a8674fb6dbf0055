"""Backup archives written by hand, to feed the restore and verify code what a real backup never holds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def backup_archive(path: Path, manifest: bytes, member: tarfile.TarInfo | None = None, data: bytes = b"") -> Path:
    """A gzipped tar shaped like a backup (root folder ``r``, ``r/MANIFEST.json`` holding ``manifest``),
    with one more ``member`` (a regular file holding ``data``, or a link, a device...) when given."""
    with tarfile.open(path, "w:gz") as tar:
        root = tarfile.TarInfo("r")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        info = tarfile.TarInfo("r/MANIFEST.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        if member is not None and member.isreg():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        elif member is not None:
            tar.addfile(member)
    return path
