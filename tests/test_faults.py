"""Fault injection: what the agent survives, one test per fault (issue 15). The figures in
docs/operations.md ("What it survives") come from these tests.

- market files broken the ways real exports are, built here from ../shared/data's PETR4.SA.csv:
  a bar dated after now, rows newest first or shuffled, dates written day first;
- the Ollama stub misbehaving: a reply that trickles in, a 5 MB reply, garbage, a hang, a bad answer
  that must not be replayed from the LLM cache;
- storage: the log disk full mid-cycle (a full tmpfs where the test may mount one, else a
  read-only folder).
"""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from agent.errors import DataError
from agent.eval.ollama_stub import OllamaStub
from agent.graph import build_graph, run_cascade
from agent.llm.cache import LLMCache
from agent.market.csv_files import CsvProvider
from agent.ops.metrics import COUNTERS
from agent.store.jsonl import read_jsonl
from agent.trading.trader import PaperTrader
from tests.conftest import AS_OF, make_deps, require_shared_data
from tests.llm.test_ollama_contract import (
    MODELS,
    ollama_deps,
    passing_answers,
    stub_settings,
)
from tests.test_loop import setup_loop

LAST_SESSION = "2025-06-30"  # conftest's FIXED_NOW is that day, 18:00 in São Paulo


# ---------------------------------------------------------------- market files

@pytest.fixture(scope="module")
def petr4() -> pd.DataFrame:
    """PETR4's real daily bars up to LAST_SESSION, as the file has them (Date as text)."""
    frame = pd.read_csv(require_shared_data() / "PETR4.SA.csv", dtype={"Date": str})
    return frame[frame["Date"] <= LAST_SESSION].reset_index(drop=True)


def decide_on(tmp_path: Path, frame: pd.DataFrame, name: str = "file") -> dict:
    """A live one-shot decision (no as_of, clock at LAST_SESSION) on ``frame`` written as PETR4.SA.csv,
    every layer answering a pass."""
    folder = tmp_path / name
    folder.mkdir()
    frame.to_csv(folder / "PETR4.SA.csv", index=False)
    return run_cascade(build_graph(make_deps(folder, market=CsvProvider(folder))), "PETR4")


def test_the_untouched_file_buys_on_its_last_session(tmp_path, petr4):
    record = decide_on(tmp_path, petr4)
    assert (record["decision"], record["bar_date"]) == ("BUY", LAST_SESSION), record["reason"]


@pytest.mark.parametrize("when", ["2025-07-01", "2099-01-05"], ids=["next-session", "year-2099"])
def test_a_bar_dated_after_now_is_dropped_and_counted(tmp_path, petr4, when):
    future = pd.concat([petr4, petr4.tail(1).assign(Date=when)], ignore_index=True)
    record = decide_on(tmp_path, future)
    assert record["bar_date"] == LAST_SESSION, "a bar from the future was taken as the last bar"
    assert record["data_report"]["dropped"]["future_dated"] == 1
    assert any("dated after 2025-06-30" in note for note in record["data_report"]["notes"])
    assert COUNTERS.get("bars_dropped_total", reason="future_dated") == 1


def test_a_file_shifted_one_session_ahead_never_decides_on_tomorrow(tmp_path, petr4):
    shifted = petr4.assign(Date=[*petr4["Date"][1:], "2025-07-01"])
    record = decide_on(tmp_path, shifted)
    assert record["bar_date"] == LAST_SESSION and record["data_report"]["dropped"]["future_dated"] == 1


def test_a_bar_from_the_future_never_fills_an_order(tmp_path):
    loop, days, _ = setup_loop(tmp_path, tickers=("PETR4",))
    assert loop.run_cycle().counts["BUY"] == 1
    days.market.today = days.day + pd.Timedelta(days=1)  # the feed runs a session ahead of the clock
    report = loop.run_cycle()
    assert report.trades == [] and loop.trader.broker.orders("pending"), "filled at an open that has not happened"
    assert COUNTERS.get("bars_dropped_total", reason="future_dated") >= 1


@pytest.mark.parametrize("order", ["newest-first", "shuffled"])
def test_rows_out_of_date_order_are_sorted_first_and_the_report_says_so(tmp_path, petr4, order):
    rows = petr4.iloc[::-1] if order == "newest-first" else petr4.sample(frac=1.0, random_state=15)
    record = decide_on(tmp_path, rows)
    baseline = decide_on(tmp_path, petr4, "sorted")
    assert (record["decision"], record["bar_date"]) == ("BUY", LAST_SESSION), record["reason"]
    assert record["indicators"] == baseline["indicators"], "the same bars as the sorted file"
    report = record["data_report"]
    assert report["repaired"]["rows_reordered"] > 5000 and "before_price_jump" not in report["dropped"]
    assert any("not in date order" in note for note in report["notes"])


def test_a_newest_first_file_gives_a_backtest_its_recent_bars(tmp_path, petr4):
    folder = tmp_path / "reversed"
    folder.mkdir()
    petr4.iloc[::-1].to_csv(folder / "PETR4.SA.csv", index=False)
    frame = CsvProvider(folder).get_bars("PETR4", end=pd.Timestamp("2024-06-28").date(), lookback=20).frame
    assert str(frame.index[-1].date()) == "2024-06-28" and len(frame) == 20


@pytest.mark.parametrize(("pattern", "note"), [("%d/%m/%Y", "day first"), ("%m/%d/%Y", "month first")])
def test_year_last_dates_are_read_in_the_order_the_file_uses(tmp_path, petr4, pattern, note):
    written = petr4.assign(Date=pd.to_datetime(petr4["Date"]).dt.strftime(pattern))
    record = decide_on(tmp_path, written)
    baseline = decide_on(tmp_path, petr4, "iso")
    assert record["bar_date"] == LAST_SESSION and record["indicators"] == baseline["indicators"]
    assert any(note in n for n in record["data_report"]["notes"])


def test_dates_whose_day_and_month_cannot_be_told_apart_are_refused_naming_the_file(tmp_path, petr4):
    days = pd.to_datetime(petr4["Date"])
    ambiguous = petr4[days.dt.day <= 12].assign(Date=days[days.dt.day <= 12].dt.strftime("%d/%m/%Y"))
    folder = tmp_path / "ambiguous"
    folder.mkdir()
    ambiguous.to_csv(folder / "PETR4.SA.csv", index=False)
    with pytest.raises(DataError, match=r"PETR4\.SA\.csv.*cannot tell day from month"):
        CsvProvider(folder).get_bars("PETR4")
    record = decide_on(tmp_path, ambiguous)
    assert record["decision"] == "HOLD" and record["discarded_at"] == "market_data"
    assert "cannot tell day from month" in record["reason"]


# ---------------------------------------------------------------- the Ollama stub misbehaving

@pytest.fixture
def stub():
    with OllamaStub(models=MODELS.values(), content=passing_answers()) as running:
        yield running


def decide_through(stub: OllamaStub, tmp_path: Path, timeout_s: float = 5.0, cache: LLMCache | None = None) -> dict:
    deps = ollama_deps(stub_settings(stub.url, timeout_s), tmp_path)
    deps.llm_cache = cache
    return run_cascade(build_graph(deps), "PETR4", as_of=AS_OF)


def test_a_reply_that_trickles_in_is_cut_at_ollama_timeout(stub, tmp_path):
    """One chunk every 0.5 s keeps each read quick; the whole reply (4 s) is far past OLLAMA_TIMEOUT=1."""
    stub.trickle_s, stub.trickle_pieces = 0.5, 8
    record = decide_through(stub, tmp_path, timeout_s=1.0)
    first = record["layers"][0]
    assert record["decision"] == "HOLD" and first["error"] == "timeout", first["reason"]
    assert "OLLAMA_TIMEOUT" in first["reason"] and len(stub.requests) == 1, "a timeout is not retried"


def test_a_model_that_hangs_is_a_timeout(stub, tmp_path):
    stub.delay_s = 30.0
    first = decide_through(stub, tmp_path, timeout_s=1.0)["layers"][0]
    assert first["error"] == "timeout"


@pytest.mark.parametrize(("reason_chars", "error"), [(5_000_000, "oversized"), (100_000, "schema_mismatch")],
                         ids=["5MB", "100kB"])
def test_a_huge_reply_is_a_hold_whose_record_stays_small(stub, tmp_path, reason_chars, error):
    answer = {"sentiment": "positive", "score": 0.9, "reason": "x" * reason_chars}
    stub.content[MODELS["sentiment"]] = json.dumps(answer)
    record = decide_through(stub, tmp_path)
    assert record["decision"] == "HOLD" and record["layers"][0]["error"] == error
    line = max(len(raw) for path in tmp_path.rglob("*.jsonl") for raw in path.read_bytes().splitlines())
    assert line < 20_000, f"a {line:,}-byte record line"
    if error == "schema_mismatch":  # the bad value quoted back in the error is cut, and the cut counted
        assert COUNTERS.get("record_truncations_total", field="echoed_input") == 1


def test_made_up_citations_are_cut_and_counted(stub, tmp_path):
    stub.content[MODELS["technical"]] = json.dumps(
        {"trend": "bullish", "score": 0.8, "reason": "ok", "cited": {f"{'n' * 250}{i}": 1.0 for i in range(40)}})
    record = decide_through(stub, tmp_path)
    technical = next(r for r in record["layers"] if r["layer"] == "technical")
    assert technical["passed"] is False and "misquoted" in technical["reason"]
    assert len(technical["flags"]) == 21 and all(len(flag) < 300 for flag in technical["flags"])
    assert len(technical["reason"]) < 2100
    assert COUNTERS.get("record_truncations_total", field="flag") == 20
    assert COUNTERS.get("record_truncations_total", field="flags") == 1


def test_a_long_gate_reason_is_cut_and_counted(stub, tmp_path):
    stub.content[MODELS["data_validation"]] = json.dumps(
        {"valid": True, "score": 0.9, "issues": ["i" * 300] * 10, "reason": "r" * 300})
    record = decide_through(stub, tmp_path)
    judged = next(r for r in record["layers"] if r["layer"] == "data_validation")
    assert judged["passed"] is True and len(judged["reason"]) < 2100
    assert COUNTERS.get("record_truncations_total", field="reason") == 1


@pytest.mark.parametrize("body", [b"\x00\xff not json at all", b'{"model": "x", "message": 5}'], ids=["bytes", "shape"])
def test_garbage_instead_of_ollamas_json_is_a_hold_with_the_reason(stub, tmp_path, body):
    stub.raw_reply = body
    record = decide_through(stub, tmp_path)
    first = record["layers"][0]
    assert record["decision"] == "HOLD" and first["error"] in ("llm_error", "invalid_json", "empty_output")
    assert first["reason"].startswith("LLM failure")


def test_an_answer_nested_deeper_than_json_can_parse_is_a_hold(stub, tmp_path):
    stub.content[MODELS["sentiment"]] = '{"a":' * 30_000 + "1" + "}" * 30_000  # 180 kB: read, then refused
    first = decide_through(stub, tmp_path)["layers"][0]
    assert first["error"] == "invalid_json" and "too deeply" in first["reason"]


def test_a_bad_answer_is_never_cached_and_a_replay_says_cached(stub, tmp_path):
    cache = LLMCache(tmp_path / "cache.db")
    stub.content[MODELS["sentiment"]] = "I like it, buy!"
    first = decide_through(stub, tmp_path / "1", cache=cache)["layers"][0]
    assert first["error"] == "invalid_json" and first["cached"] is False
    stub.content = passing_answers()
    second = decide_through(stub, tmp_path / "2", cache=cache)
    assert second["layers"][0]["error"] is None and second["layers"][0]["cached"] is False, "asked again"
    third = decide_through(stub, tmp_path / "3", cache=cache)
    assert all(layer["cached"] for layer in third["layers"] if layer["provider"] == "ollama")
    assert stub.chat_models.count(MODELS["sentiment"]) == 2


def test_a_bad_answer_an_older_version_cached_is_replayed_once_marked_cached_then_dropped(stub, tmp_path):
    cache = LLMCache(tmp_path / "cache.db")
    decide_through(stub, tmp_path / "1", cache=cache)
    cache._db.execute("UPDATE llm_cache SET text='not an answer' WHERE layer='sentiment'")
    replayed = decide_through(stub, tmp_path / "2", cache=cache)["layers"][0]
    assert replayed["error"] == "invalid_json" and replayed["cached"] is True
    asked = decide_through(stub, tmp_path / "3", cache=cache)["layers"][0]
    assert asked["error"] is None and asked["cached"] is False
    assert stub.chat_models.count(MODELS["sentiment"]) == 2


# ---------------------------------------------------------------- storage

def _mount_full_tmpfs(folder: Path) -> bool:
    """A 64 KiB tmpfs over ``folder``, filled up; False where mounting is not allowed."""
    if os.geteuid() != 0:
        return False
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True).returncode:
        return False
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # full: what the test wants
        pass
    finally:
        os.close(fd)
    return True


@contextmanager
def unwritable(folder: Path) -> Iterator[str]:
    """``folder`` refuses every write inside the block: a full tmpfs mounted over it (as root), else read-only."""
    if _mount_full_tmpfs(folder):
        try:
            yield "full tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
        return
    if os.geteuid() == 0:
        pytest.skip("root without permission to mount a tmpfs: no way to make a folder unwritable")
    paths = [folder, *folder.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield "read-only folder"
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_full_log_disk_fails_the_decisions_but_never_the_fills_stops_or_limits(tmp_path):
    tickers = ("PETR4", "VALE3", "ITUB4")
    loop, days, _ = setup_loop(tmp_path, tickers=tickers)
    assert loop.run_cycle().counts["BUY"] == 3
    days.advance()
    with unwritable(tmp_path / "logs") as kind:
        report = loop.run_cycle()  # neither the trade log nor the decision records can be written
    assert sorted(t["ticker"] for t in report.trades) == sorted(tickers), f"{kind}: every order still filled"
    positions = loop.trader.broker.positions()
    assert {p["checked_through"] for p in positions.values()} == {str(days.day)}, "stops checked on today's bar"
    assert report.portfolio["open_positions"] == 3, "the portfolio was still marked (the kill-switch limits)"
    assert report.counts["failed"] == 3 and report.orders == [], "no decision is acted on without its record"
    assert COUNTERS.get("trade_log_errors_total") == 3
    PaperTrader.from_settings(loop.settings)  # the disk has room again: a restart (or the next trade) catches up
    logged = [t["trade_id"] for t in read_jsonl(tmp_path / "logs" / "trades.jsonl")]
    assert logged == [t["trade_id"] for t in loop.trader.broker.trades()]
