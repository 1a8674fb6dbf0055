"""A real loop process for the restart tests: fake models, simulated bars, and an optional SIGKILL.

    python -m tests.support.loop_harness WORKDIR --start 2025-06-30 --cycles 4 [--kill-at POINT:N] [--continue]

Each cycle is one B3 weekday later than the one before, so BUYs fill at the next open and stops
and targets are checked. ``--kill-at`` sends SIGKILL to this process at the N-th occurrence of:

- ``record``: right after a BUY decision record is flushed, before its order is queued;
- ``order``: right after an order is committed to the ledger;
- ``ledger``: after a trade is committed to the ledger, before it reaches trades.jsonl;
- ``torn``: in the middle of writing a trades.jsonl line.
``--continue`` restarts where a killed run was: the cycle (and market day) it was in when it died,
as a restarted agent sees the market where it is now, not where it started.
"""

from __future__ import annotations

import argparse
import os
import signal
from datetime import date
from pathlib import Path

import agent.trading.broker
from agent.eval.passing import LOOSE_RISK
from agent.loop import TradingLoop
from agent.store.jsonl import DecisionSink
from agent.trading.trader import PaperTrader
from tests.conftest import make_deps, make_settings
from tests.test_loop import MarketDays

TICKERS = ("PETR4", "VALE3", "ITUB4")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(point: str, nth: int) -> None:
    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == nth

    if point == "record":
        write = DecisionSink.write

        def write_then_die(self, record):
            path = write(self, record)
            if record["decision"] == "BUY" and hit():
                die()
            return path

        DecisionSink.write = write_then_die
    elif point == "order":
        submit = agent.trading.broker.PaperBroker.submit

        def submit_then_die(self, record, ts, *args):
            order = submit(self, record, ts, *args)
            if order and hit():
                die()
            return order

        agent.trading.broker.PaperBroker.submit = submit_then_die
    elif point in ("ledger", "torn"):
        append = agent.trading.broker.append_jsonl

        def append_or_die(path, record, fsync=False):
            if hit():
                if point == "torn":
                    with open(path, "ab") as fh:
                        fh.write(b'{"trade_id":"' + record["trade_id"].encode()[:8])
                        fh.flush()
                die()
            append(path, record, fsync)

        agent.trading.broker.append_jsonl = append_or_die
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("workdir", type=Path)
    p.add_argument("--start", default="2025-06-30")
    p.add_argument("--cycles", type=int, default=4)
    p.add_argument("--kill-at")
    p.add_argument("--continue", dest="resume", action="store_true")
    p.add_argument("--store", help="postgresql:// URL of the ledger (default: SQLite under WORKDIR/data)")
    args = p.parse_args()
    if args.kill_at:
        point, n = args.kill_at.split(":")
        install_kill(point, int(n))

    work = args.workdir
    settings = make_settings({**LOOSE_RISK, ("tickers",): list(TICKERS), ("logging", "dir"): work / "logs",
                              ("database_path",): work / "data" / "agent.db", ("analysis_interval_s",): 60,
                              ("risk", "capital"): 1_000_000.0, ("database_url",): args.store})
    progress = work / "progress"
    first = 0
    days = MarketDays(date.fromisoformat(args.start))
    if args.resume and progress.exists():
        first, day = progress.read_text().split()
        first, days = int(first), MarketDays(date.fromisoformat(day))
    deps = make_deps(work, settings=settings, market=days.market)
    deps.clock = days.clock
    trader = PaperTrader.from_settings(settings, clock=days.clock)
    trader.resubmit_unqueued(deps.sink)
    loop = TradingLoop(deps, trader, wait=lambda s: False)
    for cycle in range(first, args.cycles):
        if cycle > first:
            days.advance()
        progress.write_text(f"{cycle} {days.day}")
        loop.run_cycle()


if __name__ == "__main__":
    main()
