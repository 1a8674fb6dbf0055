"""Loading the configuration: ``config.yaml`` defaults, overridden by ``.env``, then the environment,
then command-line values; validated once, every error naming the key and the variable that set it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config.env import env_overrides
from agent.config.paths import PROJECT_ROOT, anchor_paths
from agent.config.settings import Settings
from agent.errors import ConfigError, validation_problems

DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config.yaml"
DEFAULT_ENV_PATH = PROJECT_ROOT / ".env"


def _set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _describe(loc: tuple, env_for_path: dict[tuple[str, ...], str]) -> str:
    path = tuple(str(p) for p in loc if not isinstance(p, int))
    key = ".".join(path) or "<root>"
    for n in range(len(path), 0, -1):
        origin = env_for_path.get(path[:n])
        if origin:
            return f"{key} ({origin})"
    return key


def load_settings(
    config_path: Path | str | None = None,
    env_file: Path | str | None = DEFAULT_ENV_PATH,
    environ: dict[str, str] | None = None,
    overrides: dict[tuple[str, ...], Any] | None = None,
) -> Settings:
    """Load and validate the configuration once. Raises ConfigError naming the bad key.

    ``overrides`` are command-line values (highest precedence), keyed by config path.
    """
    path = Path(config_path) if config_path else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        if config_path:
            raise ConfigError(f"config file {path} is missing or empty")
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")

    env_path = Path(env_file).absolute() if env_file else None
    env_values, unknown, from_file = env_overrides(env_path, dict(os.environ if environ is None else environ))
    if unknown:
        raise ConfigError(
            f".env has unknown key(s): {', '.join(sorted(unknown))}. Allowed keys are listed in .env.example"
        )
    anchor_paths(raw, path.absolute().parent)
    env_for_path = {cfg_path: f"env {name}" for cfg_path, (name, _) in env_values.items()}
    for cfg_path, (name, value) in env_values.items():
        _set_path(raw, cfg_path, value)
        if name in from_file and env_path is not None:
            anchor_paths(raw, env_path.parent, only=cfg_path)
    for cfg_path, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, cfg_path, value)
            env_for_path.setdefault(cfg_path, "command-line option")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = validation_problems(exc, label=lambda loc: _describe(loc, env_for_path),
                                    show_input=lambda err: err["type"] not in ("extra_forbidden", "missing")
                                    and not _is_secret_loc(err["loc"]),
                                    unknown_key="unknown key (check the spelling against config.yaml)")
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  {line}" for line in lines)) from None


def _is_secret_loc(loc: tuple) -> bool:
    return bool(loc) and (loc[0] in ("secrets", "database_url") or (len(loc) > 1 and loc[1] == "slack_webhook_url"))
