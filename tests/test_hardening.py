"""Regression tests of issue 15 outside the fault-injection module (tests/test_faults.py): the
dashboard's Halt on a broken ledger, SIGTERM under layer-major scheduling, and a hostile backup
manifest."""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
from contextlib import closing
from datetime import datetime, timezone

import pytest

from agent.backup.cli import main as backup_main
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.dashboard.test_dashboard_api import client_for, post
from tests.support.dashboard_store import settings_for

NOW = datetime(2025, 6, 30, 15, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- the dashboard's Halt on a broken ledger

def _truncated(path):
    KillSwitch(path).set(TradingState.NO_NEW_BUYS, "a real ledger", "test", NOW.isoformat())
    with closing(sqlite3.connect(path)) as conn:  # everything into the main file, then cut it in half
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        side.unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random(path):
    path.write_bytes(os.urandom(8192))


@pytest.mark.parametrize("damage", [_truncated, _random, lambda path: path.mkdir()], ids=["truncated", "random", "folder"])
def test_halt_on_a_broken_ledger_is_refused_with_the_reason_never_a_500(tmp_path, damage):
    ledger = tmp_path / "agent.db"
    damage(ledger)
    client = client_for(settings_for(tmp_path, ledger), NOW)  # raises on a server error, as a 500 would be
    refused = post(client, "halt")
    assert refused.status_code in (409, 503)
    assert str(ledger) in refused.json()["detail"]
    shown = client.get("/api/kill-switch").json()
    assert shown["available"] is False and str(ledger) in shown["note"]


# ---------------------------------------------------------------- a hostile backup manifest

def test_a_deeply_nested_manifest_is_a_one_line_refusal(tmp_path, capsys):
    body = ('{"format": "b3-agent-backup", "format_version": 1, "root": "r", "sources": {}, "files": [], "x": '
            + "[" * 100_000 + "]" * 100_000 + "}").encode()
    archive = tmp_path / "nested.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        root = tarfile.TarInfo("r")
        root.type = tarfile.DIRTYPE
        tar.addfile(root)
        manifest = tarfile.TarInfo("r/MANIFEST.json")
        manifest.size = len(body)
        tar.addfile(manifest, io.BytesIO(body))
    env = ["--env-file", str(tmp_path / "no.env")]
    for command in (["verify", str(archive)], ["restore", str(archive), "--target", str(tmp_path / "out")]):
        assert backup_main([*command, *env]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nested too deeply" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
