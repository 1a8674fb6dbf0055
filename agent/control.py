"""The operator's kill-switch commands: ``python -m agent.loop --halt "reason"``, ``--no-new-buys``,
``--resume`` and ``--status``, from another shell, on the ledger a running (or stopped) agent uses."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from agent.cli import EXIT_CONFIG, exit_code, settings_from_args
from agent.errors import ConfigError
from agent.market.calendar import B3_TZ, b3_timestamp
from agent.ops.logs import setup_logging
from agent.store.checks import ledger_errors
from agent.trace import print_error
from agent.trading.kill_switch import KillSwitch, TradingState


def add_control_flags(p: argparse.ArgumentParser) -> None:
    ctl = p.add_mutually_exclusive_group()
    ctl.add_argument("--halt", nargs="?", const="", metavar="REASON", help="set the kill switch to HALTED and exit")
    ctl.add_argument("--no-new-buys", nargs="?", const="", metavar="REASON",
                     help="set the kill switch to NO_NEW_BUYS and exit")
    ctl.add_argument("--resume", action="store_true", help="set the kill switch back to RUNNING and exit")
    ctl.add_argument("--status", action="store_true", help="print the kill-switch state as JSON and exit")


def wants_control(args: argparse.Namespace) -> bool:
    return args.halt is not None or args.no_new_buys is not None or args.resume or args.status


def control(args: argparse.Namespace) -> int:
    """--halt / --no-new-buys / --resume / --status: change or show the persisted kill switch."""
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return exit_code(exc)
    setup_logging(settings, to_file=False)
    if settings.database_url is None and not settings.ledger_path.is_file():
        print_error(ConfigError(f"DATABASE_PATH: no agent database at {settings.ledger_path.resolve()}: set "
                                "DATABASE_PATH to the database the agent uses"))
        return EXIT_CONFIG
    now = b3_timestamp(datetime.now(B3_TZ))
    try:
        with ledger_errors(settings.ledger_path):
            switch = KillSwitch(settings.store)
            if args.halt is not None:
                switch.set(TradingState.HALTED, args.halt or "halted by the operator", "operator", now)
            elif args.no_new_buys is not None:
                switch.set(TradingState.NO_NEW_BUYS, args.no_new_buys or "no new buys, set by the operator",
                           "operator", now)
            elif args.resume:
                switch.set(TradingState.RUNNING, "resumed by the operator", "operator", now)
            status = switch.status()
    except ConfigError as exc:  # a damaged or unusable ledger
        return exit_code(exc)
    sys.stdout.write(json.dumps(status) + "\n")
    return 0
