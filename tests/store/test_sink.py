"""Append-only JSONL: flushed lines, a torn last line tolerated on read and on the next write."""

from __future__ import annotations

import json

from agent.store.jsonl import append_jsonl, read_jsonl


def test_each_record_is_a_complete_line_immediately(tmp_path):
    path = tmp_path / "d" / "x.jsonl"
    append_jsonl(path, {"n": 1})
    assert path.read_text() == '{"n":1}\n'  # flushed: visible before any close or exit
    append_jsonl(path, {"n": 2, "t": "ação"})
    assert [r["n"] for r in read_jsonl(path)] == [1, 2]


def test_truncated_last_line_is_skipped_and_the_next_write_starts_clean(tmp_path):
    path = tmp_path / "x.jsonl"
    append_jsonl(path, {"n": 1})
    with open(path, "ab") as fh:  # a crash mid-write
        fh.write(b'{"n": 2, "decis')
    assert [r["n"] for r in read_jsonl(path)] == [1]
    append_jsonl(path, {"n": 3})
    assert [r["n"] for r in read_jsonl(path)] == [1, 3]
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1]) == {"n": 3}


def test_non_finite_numbers_are_refused_not_written(tmp_path):
    path = tmp_path / "x.jsonl"
    try:
        append_jsonl(path, {"score": float("nan")})
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("NaN must not be written as invalid JSON")
    assert not path.exists() or path.read_text() == ""
