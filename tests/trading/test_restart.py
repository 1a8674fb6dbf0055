"""Restart safety: a real loop process killed with SIGKILL at the dangerous moments, then restarted.

After the restart nothing is lost (every BUY decision has its order, every committed trade is in
trades.jsonl) and nothing is duplicated (one order per decision, one trade per trade id), and the
accounts still balance.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.store.jsonl import DecisionSink, read_jsonl
from agent.trading.broker import PaperBroker

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CAPITAL = 1_000_000.0


def harness(work: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.support.loop_harness", str(work), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def store_args(stores) -> list[str]:
    target = stores.new("ledger")
    return ["--store", str(target)] if stores.kind == "postgres" else []


def check_invariants(work: Path, stores=None) -> PaperBroker:
    target = stores.new("ledger") if stores is not None and stores.kind == "postgres" else work / "data" / "agent.db"
    broker = PaperBroker(target, work / "logs" / "trades.jsonl", CAPITAL)
    ledger = broker.trades()
    logged = list(read_jsonl(work / "logs" / "trades.jsonl"))
    # nothing lost, nothing duplicated between the ledger and the trade log
    assert Counter(t["trade_id"] for t in logged) == Counter(t["trade_id"] for t in ledger)
    assert max(Counter(t["trade_id"] for t in logged).values()) == 1
    # every BUY decision ever recorded has exactly one order; no decision opened twice
    buys = {r["decision_id"] for r in DecisionSink(work / "logs").records() if r["decision"] == "BUY"}
    orders = Counter(o["decision_id"] for o in broker.orders())
    assert buys <= set(orders) and max(orders.values()) == 1
    opens = Counter(t["decision_id"] for t in ledger if t["action"] == "open")
    assert not opens or max(opens.values()) == 1
    # cash + cost of open positions == capital + realised profit
    held = sum(p["qty"] * p["entry"] + p["open_fees"] for p in broker.positions().values())
    realised = sum(t["profit"] for t in ledger if t["profit"] is not None)
    assert broker.cash >= 0
    assert broker.cash + held == pytest.approx(CAPITAL + realised, abs=0.01 * (1 + len(ledger)))
    return broker


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("clean")
    done = harness(work, "--cycles", "6")
    assert done.returncode == 0, done.stderr[-2000:]
    return check_invariants(work).trades()


@pytest.mark.parametrize("kill_at", ["record:2", "order:4", "ledger:1", "ledger:4", "torn:5"])
def test_sigkill_then_restart_loses_and_duplicates_nothing(tmp_path, kill_at, uninterrupted, stores):
    killed = harness(tmp_path, "--cycles", "6", "--kill-at", kill_at, *store_args(stores))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    restarted = harness(tmp_path, "--cycles", "6", "--continue", *store_args(stores))
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    broker = check_invariants(tmp_path, stores)
    # the replay converges on the same trades as a run that never crashed
    key = lambda t: (t["trade_id"], t["bar_date"], t["action"], t["qty"], t["price"])  # noqa: E731
    assert sorted(map(key, broker.trades())) == sorted(map(key, uninterrupted))


def test_sigkill_at_random_moments_repeatedly(tmp_path, uninterrupted):
    """Kill the process at arbitrary moments inside cycles (not only at hooks), three times, then let it finish."""
    rng = random.Random(4)
    progress = tmp_path / "progress"
    for target in (1, 3, 4):
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.loop_harness", str(tmp_path), "--cycles", "6",
                                 "--continue"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if progress.exists() and int((progress.read_text().split() or ["0"])[0]) >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    done = harness(tmp_path, "--cycles", "6", "--continue")
    assert done.returncode == 0, done.stderr[-2000:]
    broker = check_invariants(tmp_path)
    key = lambda t: (t["trade_id"], t["bar_date"], t["action"], t["qty"], t["price"])  # noqa: E731
    assert sorted(map(key, broker.trades())) == sorted(map(key, uninterrupted))
