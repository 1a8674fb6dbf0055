"""Storage the agent cannot use stops it at start-up with exit 2 and a line naming the key, never a traceback
(issue 15, defect 9): LOG_DIR a file, under a file or read-only; DATABASE_PATH random bytes, a truncated
ledger, read-only, /dev/null or under a file; ``--status`` on a corrupt ledger."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from agent.loop import main
from agent.trading.kill_switch import TradingState
from agent.trading.trader import PaperTrader
from tests.conftest import make_settings


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` (with its files) read-only: by mode bits, or for root (who ignores them) a read-only tmpfs."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    staged = folder.with_name(folder.name + ".staged")
    folder.rename(staged)
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root and cannot mount a read-only tmpfs here")
    try:
        shutil.copytree(staged, folder, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)  # never leave a mount behind


@pytest.fixture
def start(tmp_path, monkeypatch, capsys):
    """Run ``python -m agent.loop`` in-process with the given storage; returns (exit status, stderr)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    monkeypatch.setenv("LLM_PROVIDER", "embedded")  # no Ollama probe: the storage is what is tested
    for key in ("DASHBOARD_ENABLED", "METRICS_ENABLED"):
        monkeypatch.setenv(key, "false")
    monkeypatch.setenv("LLM_CACHE_PATH", str(tmp_path / "cache" / "llm_cache.db"))

    def run(*args: str, log_dir: Path | None = None, database: Path | str | None = None) -> tuple[int, str]:
        monkeypatch.setenv("LOG_DIR", str(log_dir or tmp_path / "logs"))
        monkeypatch.setenv("DATABASE_PATH", str(database or tmp_path / "data" / "agent.db"))
        capsys.readouterr()
        code = main(["--env-file", str(env_file), "--cycles", "1", *args] if not args else
                    ["--env-file", str(env_file), *args])
        return code, capsys.readouterr().err
    return run


def ledger(path: Path) -> Path:
    """A real ledger with a few hundred rows (kill switch, orders), as the agent leaves it."""
    trader = PaperTrader.from_settings(make_settings({("database_path",): path, ("logging", "dir"): path.parent}))
    for i in range(300):
        state = TradingState.HALTED if i % 2 == 0 else TradingState.RUNNING
        trader.switch.set(state, f"operator note {i} " * 10, "test", "2025-06-30T10:00:00-03:00")
    trader.broker.db.close()
    return path


def assert_refused(result: tuple[int, str], key: str, *words: str) -> None:
    code, err = result
    assert code == 2, err
    assert "Traceback" not in err and f"error: {key}:" in err, err
    for word in words:
        assert word in err, err


# --------------------------------------------------------------------------- LOG_DIR

def test_log_dir_that_is_a_file(tmp_path, start):
    (tmp_path / "logs").write_text("not a folder")
    assert_refused(start(log_dir=tmp_path / "logs"), "LOG_DIR", "is a file")


def test_log_dir_under_a_file(tmp_path, start):
    (tmp_path / "plain").write_text("a file")
    assert_refused(start(log_dir=tmp_path / "plain" / "logs"), "LOG_DIR", "is under", "plain")


def test_log_dir_read_only(tmp_path, start):
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro") as folder:
        assert_refused(start(log_dir=folder), "LOG_DIR", "not writable" if os.geteuid() else "read-only")


# --------------------------------------------------------------------------- DATABASE_PATH

def test_database_path_random_bytes(tmp_path, start):
    (tmp_path / "agent.db").write_bytes(os.urandom(8192))
    assert_refused(start(database=tmp_path / "agent.db"), "DATABASE_PATH", "not a usable SQLite database")


def test_database_path_truncated_ledger(tmp_path, start):
    path = ledger(tmp_path / "full" / "agent.db")
    data = path.read_bytes()
    assert len(data) > 3 * 4096
    (tmp_path / "agent.db").write_bytes(data[: len(data) // 3])
    assert_refused(start(database=tmp_path / "agent.db"), "DATABASE_PATH", "backup")


def test_database_path_read_only(tmp_path, start):
    ledger(tmp_path / "ro" / "agent.db")
    for extra in (tmp_path / "ro").glob("agent.db-*"):
        extra.unlink()
    with read_only(tmp_path / "ro") as folder:
        assert_refused(start(database=folder / "agent.db"), "DATABASE_PATH", "read-only")


def test_database_path_dev_null(start):
    assert_refused(start(database="/dev/null"), "DATABASE_PATH", "not a regular file")


def test_database_path_under_a_file(tmp_path, start):
    (tmp_path / "plain").write_text("a file")
    assert_refused(start(database=tmp_path / "plain" / "data"), "DATABASE_PATH", "is under", "plain")


def test_status_on_a_corrupt_ledger(tmp_path, start):
    (tmp_path / "agent.db").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    assert_refused(start("--status", database=tmp_path / "agent.db"), "DATABASE_PATH")
