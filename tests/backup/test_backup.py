"""``make backup`` / ``python -m agent.backup``: archive, retention, verified and path-safe restore."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.backup.cli import main
from agent.backup.create import create_backup
from agent.backup.layout import Paths
from agent.backup.restore import restore_backup, verify_backup
from agent.backup.retention import apply_retention, list_archives
from agent.errors import BackupError
from tests.conftest import make_settings
from tests.support.backup_archives import backup_archive

NOW = datetime(2025, 6, 30, 21, 0, tzinfo=timezone.utc)
DECISION = '{"ticker": "PETR4", "decision": "HOLD", "reason": "gate"}\n'
TRADE = '{"ticker": "VALE3", "side": "BUY", "qty": 100}\n'
ENV = "BRAPI_TOKEN=secret-token-123\n"
ENV_KEYS = ("LOG_DIR", "DATABASE_PATH", "BACKUP_DIR", "BACKUP_KEEP_DAYS")


def quiet(_line: str) -> None:
    pass


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir (the cwd) with logs/, data/agent.db and .env; the CLI sees it through the environment
    (the defaults are the real project's folders, whatever the current directory)."""
    monkeypatch.chdir(tmp_path)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, where in (("LOG_DIR", "logs"), ("DATABASE_PATH", "data/agent.db"), ("BACKUP_DIR", "backups")):
        monkeypatch.setenv(key, str(tmp_path / where))
    (tmp_path / "logs" / "2025-06").mkdir(parents=True)
    (tmp_path / "logs" / "2025-06" / "30.jsonl").write_text(DECISION)
    (tmp_path / "logs" / "trades.jsonl").write_text(TRADE)
    (tmp_path / "logs" / "trading-agent.log").write_text("2025-06-30 INFO started\n")
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "agent.db") as con:
        con.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, note TEXT)")
        con.execute("INSERT INTO ledger (note) VALUES ('opening balance')")
    con.close()
    (tmp_path / "data" / "notes.txt").write_text("plain file")
    (tmp_path / ".env").write_text(ENV)
    (tmp_path / ".env").chmod(0o600)
    return tmp_path


def paths_for(root: Path, backup_dir: Path | None = None) -> Paths:
    s = make_settings({("backup", "dir"): backup_dir or root / "backups", ("logging", "dir"): root / "logs",
                       ("database_path",): root / "data" / "agent.db"})
    return Paths.from_settings(s, root / ".env")


def read_archive(archive: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, {name relative to the root folder: bytes}) for an archive's regular files."""
    with tarfile.open(archive, "r:gz") as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}
    return json.loads(files.pop("MANIFEST.json")), files


def rewrite_archive(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    """Copy ``src`` to ``dst`` replacing the content of the named members (manifest left as it was)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            rel = m.name.split("/", 1)[1] if "/" in m.name else ""
            if m.isreg():
                data = change.get(rel, tin.extractfile(m).read())
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        out = [r[0] for r in con.execute("SELECT note FROM ledger ORDER BY id")]
    con.close()
    return out


# ------------------------------------------------------------------------------------------------- create


def test_create_writes_a_0600_archive_whose_manifest_lists_every_file_with_matching_checksums(project: Path):
    archive = create_backup(paths_for(project), now=NOW, emit=quiet)

    assert archive.name == "b3-agent-backup-20250630T210000Z.tar.gz"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE((project / "backups").stat().st_mode) == 0o700
    manifest, files = read_archive(archive)
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {"logs/2025-06/30.jsonl", "logs/trades.jsonl", "logs/trading-agent.log",
                           "data/agent.db", "data/notes.txt", ".env"} == set(files)
    for path, data in files.items():
        assert listed[path]["size"] == len(data)
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed["data/agent.db"]["kind"] == "sqlite"
    assert files[".env"] == ENV.encode()
    assert manifest["created_at"] == "2025-06-30T21:00:00Z" and manifest["agent_version"]
    assert manifest["sources"]["logs"] == {"path": str(project / "logs"), "present": True}
    assert manifest["sources"]["env"]["path"] == str(project / ".env")
    assert [p.name for p in (project / "backups").iterdir()] == [archive.name]  # no temp files left behind


def test_create_never_reuses_a_name_in_the_same_second(project: Path):
    first = create_backup(paths_for(project), now=NOW, emit=quiet)
    second = create_backup(paths_for(project), now=NOW, emit=quiet)
    assert second.name == "b3-agent-backup-20250630T210000Z-1.tar.gz"
    assert first.exists() and first != second


def test_missing_parts_are_recorded_as_absent(project: Path):
    shutil.rmtree(project / "logs")
    (project / ".env").unlink()
    manifest, files = read_archive(create_backup(paths_for(project), now=NOW, emit=quiet))
    assert manifest["sources"]["logs"]["present"] is False
    assert manifest["sources"]["env"]["present"] is False
    assert set(files) == {"data/agent.db", "data/notes.txt"}


def test_the_backup_dir_inside_the_data_dir_is_not_archived(project: Path):
    inner = project / "data" / "backups"
    create_backup(paths_for(project, inner), now=NOW - timedelta(hours=1), emit=quiet)
    second = create_backup(paths_for(project, inner), now=NOW, emit=quiet)

    manifest, files = read_archive(second)
    assert not [p for p in files if "backups" in p]
    assert not [d for d in manifest["dirs"] if "backups" in d]
    assert any(s["path"] == str(inner) for s in manifest["skipped"])
    assert second.stat().st_size < 64 * 1024


def test_wal_rows_not_yet_in_the_main_file_are_captured(project: Path):
    db = project / "data" / "agent.db"
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.executemany("INSERT INTO ledger (note) VALUES (?)", [(f"fill {i}",) for i in range(50)])
        writer.commit()
        # The premise: the rows live only in the -wal file, so copying agent.db alone would lose them.
        raw_copy = project / "raw-copy.db"
        shutil.copyfile(db, raw_copy)
        assert (project / "data" / "agent.db-wal").stat().st_size > 0
        assert len(rows(raw_copy)) == 1

        archive = create_backup(paths_for(project), now=NOW, emit=quiet)
    finally:
        writer.close()

    manifest, files = read_archive(archive)
    assert not [p for p in files if p.endswith(("-wal", "-shm"))]
    assert any(s["path"].endswith("agent.db-wal") for s in manifest["skipped"])
    result = restore_backup(archive, {"logs": project / "t" / "logs", "data": project / "t" / "data",
                                      "env": project / "t" / ".env"}, emit=quiet)
    assert result.databases == ["data/agent.db"]
    restored = project / "t" / "data" / "agent.db"
    assert rows(restored) == ["opening balance"] + [f"fill {i}" for i in range(50)]
    with sqlite3.connect(restored) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_a_wal_database_no_one_has_open_gets_no_side_files_left_next_to_it(project: Path):
    db = project / "data" / "agent.db"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA journal_mode=WAL")
    con.close()
    assert not (project / "data" / "agent.db-wal").exists()
    create_backup(paths_for(project), now=NOW, emit=quiet)
    assert sorted(p.name for p in (project / "data").iterdir()) == ["agent.db", "notes.txt"]


# ------------------------------------------------------------------------------------------------- restore


def test_restore_round_trip_into_a_target_dir(project: Path):
    archive = create_backup(paths_for(project), now=NOW, emit=quiet)
    before_logs, before_env = tree(project / "logs"), (project / ".env").read_bytes()

    assert main(["restore", str(archive), "--target", "restored", "--env-file", str(project / ".env")]) == 0

    target = project / "restored"
    assert tree(target / "logs") == before_logs
    assert (target / "logs" / "2025-06" / "30.jsonl").read_text() == DECISION
    assert (target / "logs" / "trades.jsonl").read_text() == TRADE
    assert (target / ".env").read_bytes() == before_env
    assert stat.S_IMODE((target / ".env").stat().st_mode) == 0o600
    assert (target / "data" / "notes.txt").read_text() == "plain file"
    assert rows(target / "data" / "agent.db") == ["opening balance"]
    assert sorted(p.name for p in target.iterdir()) == [".env", "data", "logs"]  # no staging dir left


def test_restore_refuses_to_overwrite_and_force_moves_the_old_files_aside(project: Path, capsys):
    archive = create_backup(paths_for(project), now=NOW, emit=quiet)
    (project / "logs" / "trades.jsonl").write_text("newer trades\n")
    (project / ".env").write_text("BRAPI_TOKEN=newer-token\n")
    env = ["--env-file", str(project / ".env")]

    assert main(["restore", str(archive), *env]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err and "Traceback" not in err
    assert (project / "logs" / "trades.jsonl").read_text() == "newer trades\n"  # untouched

    assert main(["restore", str(archive), "--force", *env]) == 0
    out = capsys.readouterr().out
    assert "newer-token" not in out and "secret-token" not in out  # never prints .env contents
    assert (project / "logs" / "trades.jsonl").read_text() == TRADE
    assert (project / ".env").read_text() == ENV
    aside_logs = list(project.glob("logs.pre-restore-*"))
    aside_env = list(project.glob(".env.pre-restore-*"))
    assert len(aside_logs) == 1 and len(list(project.glob("data.pre-restore-*"))) == 1 and len(aside_env) == 1
    assert (aside_logs[0] / "trades.jsonl").read_text() == "newer trades\n"
    assert aside_env[0].read_text() == "BRAPI_TOKEN=newer-token\n"


def test_a_corrupted_file_is_caught_by_the_checksums_and_nothing_is_restored(project: Path, capsys):
    good = create_backup(paths_for(project), now=NOW, emit=quiet)
    bad = project / "bad.tar.gz"
    rewrite_archive(good, bad, {"logs/trades.jsonl": b'{"ticker": "VALE3", "side": "SELL"}\n'})

    assert main(["restore", str(bad), "--target", "out", "--env-file", str(project / ".env")]) == 1
    assert "checksum check failed for logs/trades.jsonl" in capsys.readouterr().err
    assert not (project / "out" / "logs").exists() and not (project / "out" / "data").exists()
    assert main(["verify", str(bad), "--env-file", str(project / ".env")]) == 1
    assert main(["verify", str(good), "--env-file", str(project / ".env")]) == 0


def _malicious(path: Path, member: tarfile.TarInfo, data: bytes = b"pwned") -> Path:
    manifest = {"format": "b3-agent-backup", "format_version": 1, "root": "r", "created_at": "x",
                "sources": {}, "files": [], "dirs": []}
    return backup_archive(path, json.dumps(manifest).encode(), member, data)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, link
    return ti


@pytest.mark.parametrize("member", [
    _member("r/../evil"),
    _member("r/logs/../../evil"),
    _member("../evil"),
    _member("ABSOLUTE"),  # replaced by an absolute path under tmp_path in the test
    _member("r/logs/link", tarfile.SYMTYPE, "../../evil"),
    _member("r/logs/hard", tarfile.LNKTYPE, "/etc/passwd"),
], ids=["dotdot", "nested-dotdot", "top-dotdot", "absolute", "symlink", "hardlink"])
def test_a_malicious_archive_is_refused_and_nothing_lands_outside_the_target(project: Path, member, capsys):
    if member.name == "ABSOLUTE":
        member.name = str(project / "evil")
    archive = _malicious(project / "evil.tar.gz", member)
    target = project / "target"

    assert main(["restore", str(archive), "--target", str(target), "--env-file", str(project / ".env")]) == 1
    assert "unsafe archive member" in capsys.readouterr().err
    assert not (project / "evil").exists() and not (project.parent / "evil").exists()
    assert not target.exists() or list(target.iterdir()) == []
    with pytest.raises(BackupError, match="unsafe"):
        verify_backup(archive)


# ------------------------------------------------------------------------------------------------ retention


def _fake(backup_dir: Path, when: datetime, seq: int = 0) -> Path:
    name = f"b3-agent-backup-{when:%Y%m%dT%H%M%SZ}{f'-{seq}' if seq else ''}.tar.gz"
    p = backup_dir / name
    p.write_bytes(b"x")
    return p


def test_retention_deletes_old_archives_by_name_keeps_recent_and_unrelated_files(tmp_path: Path):
    d = tmp_path / "backups"
    d.mkdir()
    old = [_fake(d, NOW - timedelta(days=30)), _fake(d, NOW - timedelta(days=8)), _fake(d, NOW - timedelta(days=8), 1)]
    recent = [_fake(d, NOW - timedelta(days=6)), _fake(d, NOW)]
    unrelated = [d / "notes.txt", d / "b3-agent-backup-garbage.tar.gz", d / "b3-agent-backup-20200101T000000Z.zip",
                 d / "other-20200101T000000Z.tar.gz"]
    for p in unrelated:
        p.write_text("keep me")
    for p in old + recent + unrelated:  # mtime says "new" for all: only the name counts
        os.utime(p, None)
    lines: list[str] = []

    deleted = apply_retention(d, 7, now=NOW, emit=lines.append)

    assert sorted(deleted) == sorted(old)
    assert all(not p.exists() for p in old)
    assert all(p.exists() for p in recent + unrelated)
    assert len(lines) == 3 and all(line.startswith("deleted old backup") for line in lines)


def test_retention_always_keeps_the_newest_even_when_everything_is_old(tmp_path: Path):
    d = tmp_path / "backups"
    d.mkdir()
    older, newest = _fake(d, NOW - timedelta(days=90)), _fake(d, NOW - timedelta(days=60))
    assert apply_retention(d, 7, now=NOW, emit=quiet) == [older]
    assert newest.exists() and not older.exists()


def test_create_via_the_cli_applies_retention(project: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("BACKUP_KEEP_DAYS", "3")
    d = project / "backups"
    d.mkdir()
    ancient = _fake(d, datetime.now(timezone.utc) - timedelta(days=10))
    assert main(["create", "--env-file", str(project / ".env")]) == 0
    out = capsys.readouterr().out
    assert not ancient.exists() and f"deleted old backup: {ancient.name}" in out
    assert len(list_archives(d)) == 1
    assert "secret-token" not in out


# ------------------------------------------------------------------------------------------------ CLI codes


def test_cli_exit_codes(project: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    env = ["--env-file", str(project / ".env")]
    assert main([*env]) == 0  # no command: create
    assert main(["list", *env]) == 0
    assert "b3-agent-backup-" in capsys.readouterr().out
    assert main(["restore", "latest", "--target", "t", *env]) == 0

    assert main(["create", "--keep-days", "0", *env]) == 2  # config error
    assert "keep_days" in capsys.readouterr().err
    assert main(["restore", "no-such.tar.gz", "--target", "t2", *env]) == 1
    not_gz = project / "not-an-archive.tar.gz"
    not_gz.write_text("hello")
    assert main(["restore", str(not_gz), "--target", "t3", *env]) == 1

    monkeypatch.setenv("LOG_DIR", str(project / "none-logs"))
    monkeypatch.setenv("DATABASE_PATH", str(project / "none-data" / "agent.db"))
    assert main(["create", "--env-file", str(project / "no.env")]) == 1
    err = capsys.readouterr().err
    assert "nothing to back up" in err and "Traceback" not in err
