"""Regression tests of issue 15 outside the fault-injection module (tests/test_faults.py): the
dashboard's Halt on a broken ledger, SIGTERM under layer-major scheduling, and a hostile backup
manifest."""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timezone


from agent.backup.cli import main as backup_main

NOW = datetime(2025, 6, 30, 15, 0, tzinfo=timezone.utc)


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
