"""python -m agent.dashboard (make dashboard): the dashboard alone, over the loop's stores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from agent.cli import exit_code, settings_from_args
from agent.dashboard.server import announce, url_of, uvicorn_config
from agent.errors import ConfigError
from agent.ops.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--bind", help="address to listen on (env DASHBOARD_BIND; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env DASHBOARD_PORT; default 8050)")
    p.add_argument("--config", type=Path, help="config file (default: config.yaml in the project)")
    p.add_argument("--env-file", type=Path, help="the .env file to read (default: .env in the project)")
    args = p.parse_args(argv)
    try:
        settings = settings_from_args(args, {("dashboard", "bind"): args.bind, ("dashboard", "port"): args.port})
    except ConfigError as exc:
        return exit_code(exc)
    setup_logging(settings, to_file=False)
    config = uvicorn_config(settings)
    announce(settings, url_of(config.host, config.port))
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
