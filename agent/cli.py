"""What the command-line entry points share: the data and LLM flags, start-up, and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_ENV_PATH, Settings, load_settings
from agent.deps import CascadeDeps, build_deps
from agent.errors import ConfigError
from agent.market.sources import SOURCES
from agent.ops.logs import setup_logging
from agent.store.checks import writable_dir
from agent.trace import announce_defaults, announce_models, print_error

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PROVIDER = 0, 1, 2, 3  # success, operational error, config, LLM provider


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=SOURCES, help="market data source (env MARKET_SOURCE)")
    p.add_argument("--data-dir", type=Path, help="directory of per-ticker CSVs for --source csv")
    p.add_argument("--provider", choices=["auto", "ollama", "embedded"], help="LLM provider (env LLM_PROVIDER)")
    p.add_argument("--config", type=Path, help="config file (default: config.yaml in the project)")
    p.add_argument("--env-file", type=Path, help="the .env file to read (default: .env in the project)")


def settings_from_args(args: argparse.Namespace, overrides: dict[tuple[str, ...], Any] | None = None) -> Settings:
    """The configuration with the command line's --config, --env-file and ``overrides`` (flags win)."""
    env_file = getattr(args, "env_file", None)
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"--env-file: {env_file} is not a file")
    return load_settings(args.config, env_file=env_file or DEFAULT_ENV_PATH, overrides=overrides)


def start(args: argparse.Namespace, overrides: dict[tuple[str, ...], Any] | None = None, *,
          sink: bool = True, log_files: bool = True) -> CascadeDeps:
    """Validate the config (flags win), set up logging, wire the parts, announce embedded defaults and each layer's
    model.

    Raises ConfigError or ProviderError; ``exit_code`` turns them into the documented exit status.
    """
    settings = settings_from_args(args, {
        ("market", "source"): args.source, ("market", "data_dir"): args.data_dir, ("llm", "provider"): args.provider,
        **(overrides or {})})
    if sink or log_files:
        writable_dir(settings.logging.dir, "LOG_DIR")  # a file, under a file or read-only: one line, exit 2
    setup_logging(settings, to_file=log_files)
    deps = build_deps(settings, sink=sink)
    announce_defaults(deps)
    announce_models(deps)
    return deps


def exit_code(exc: Exception) -> int:
    """Print a start-up error and return its exit status (2: config, 3: LLM provider)."""
    print_error(exc)
    return EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_PROVIDER
