"""Regression tests of issue 15 outside the fault-injection module (tests/test_faults.py): the
dashboard's Halt on a broken ledger, SIGTERM under layer-major scheduling, and a hostile backup
manifest."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.backup.cli import main as backup_main
from agent.config import LAYER_NAMES
from agent.eval.ollama_stub import OllamaStub
from agent.eval.passing import LOOSE_RISK, PASS
from agent.scheduler import LayerMajorScheduler
from agent.trading.kill_switch import KillSwitch, TradingState
from tests.conftest import AS_OF, make_deps, make_settings
from tests.dashboard.test_dashboard_api import client_for, post
from tests.support.backup_archives import backup_archive
from tests.support.dashboard_store import settings_for
from tests.test_loop_process import loop_env, poll_while_running, start_loop

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


@pytest.mark.parametrize("damage", [_truncated, _random, lambda path: path.mkdir()],
                         ids=["truncated", "random", "folder"])
def test_halt_on_a_broken_ledger_is_refused_with_the_reason_never_a_500(tmp_path, damage):
    ledger = tmp_path / "agent.db"
    damage(ledger)
    client = client_for(settings_for(tmp_path, ledger), NOW)  # raises on a server error, as a 500 would be
    refused = post(client, "halt")
    assert refused.status_code in (409, 503)
    assert str(ledger) in refused.json()["detail"]
    shown = client.get("/api/kill-switch").json()
    assert shown["available"] is False and str(ledger) in shown["note"]


# ---------------------------------------------------------------- SIGTERM under layer-major scheduling

class Held:
    """What the held models share: the layers asked, in order, and when they may answer."""

    def __init__(self):
        self.calls: list[str] = []
        self.started, self.release = threading.Event(), threading.Event()


class HeldModel(BaseChatModel):
    """Answers a pass for its layer, but only once ``held.release`` is set."""

    layer: str
    held: Any

    @property
    def _llm_type(self) -> str:
        return "held-fake"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        self.held.calls.append(self.layer)
        self.held.started.set()
        self.held.release.wait(60)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=json.dumps(PASS[self.layer])))])


def held_scheduler(tmp_path) -> tuple[LayerMajorScheduler, Held]:
    held = Held()
    settings = make_settings({**LOOSE_RISK, ("ollama", "parallel"): 1})
    deps = make_deps(tmp_path, settings=settings, factory=lambda layer, schema: HeldModel(layer=layer, held=held))
    return LayerMajorScheduler(deps), held


def test_a_stop_finishes_the_call_in_flight_and_starts_no_other(tmp_path):
    scheduler, held = held_scheduler(tmp_path)

    def sigterm_during_the_first_call():
        held.started.wait(60)
        scheduler.stop.set()  # what the loop's SIGTERM handler does
        held.release.set()

    threading.Thread(target=sigterm_during_the_first_call, daemon=True).start()
    results = scheduler.run(["PETR4", "VALE3", "ITUB4"], as_of=AS_OF)
    assert held.calls == ["sentiment"], "the other tickers' queued calls must not start after the stop"
    assert results == {}, "no decision after the stop"


def test_a_second_signal_ends_the_wait_for_the_call_in_flight(tmp_path):
    """The loop's handler raises KeyboardInterrupt on a second signal; the scheduler must not then wait
    for the LLM call still running in its worker (the process exits with os._exit)."""
    scheduler, held = held_scheduler(tmp_path)
    returned, outcome = threading.Event(), {}

    def second_signal():
        held.started.wait(60)
        os.kill(os.getpid(), signal.SIGUSR1)
        outcome["before_the_call_ended"] = returned.wait(20)  # bounded only so the old behaviour fails, not hangs
        held.release.set()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        threading.Thread(target=second_signal, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            try:
                scheduler.run(["PETR4", "VALE3"], as_of=AS_OF)
            finally:
                returned.set()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        held.release.set()
    assert outcome.get("before_the_call_ended", returned.is_set()) is True
    assert held.calls == ["sentiment"]


# ---------------------------------------------------------------- a hostile backup manifest

def test_a_deeply_nested_manifest_is_a_one_line_refusal(tmp_path, capsys):
    body = ('{"format": "b3-agent-backup", "format_version": 1, "root": "r", "sources": {}, "files": [], "x": '
            + "[" * 100_000 + "]" * 100_000 + "}").encode()
    archive = backup_archive(tmp_path / "nested.tar.gz", body)
    env = ["--env-file", str(tmp_path / "no.env")]
    for command in (["verify", str(archive)], ["restore", str(archive), "--target", str(tmp_path / "out")]):
        assert backup_main([*command, *env]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nested too deeply" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_the_loop_process_stops_on_sigterm_mid_call_and_at_once_on_a_second(tmp_path):
    """The real process under layer-major scheduling, its model slow (3 s) then hung: one SIGTERM lets
    the call in flight finish and starts no other; a second one exits (130) without waiting for it."""
    models = {getattr(make_settings().layers, layer).model: json.dumps(PASS[layer]) for layer in LAYER_NAMES}
    with OllamaStub(models=list(models), content=models, delay_s=3.0) as stub:
        env = loop_env(tmp_path / "one", LLM_PROVIDER="ollama", OLLAMA_HOST=stub.url, B3_TICKERS="PETR4,VALE3,ITUB4")
        proc = start_loop(env, "--source", "sim")
        assert poll_while_running(proc, lambda: stub.requests, 120), proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "received SIGTERM" in err, err[-3000:]
        assert len(stub.requests) == 1, "no LLM call starts after the signal"

        stub.requests.clear()
        stub.delay_s = 600.0  # hung: only a second signal ends the wait
        env = loop_env(tmp_path / "two", LLM_PROVIDER="ollama", OLLAMA_HOST=stub.url, OLLAMA_TIMEOUT="300")
        proc = start_loop(env, "--source", "sim")
        assert poll_while_running(proc, lambda: stub.requests, 120), proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        poll_while_running(proc, lambda: False, 1.0)  # the first signal handled before the second
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-3000:]
        assert "interrupted again" in err
