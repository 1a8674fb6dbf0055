"""Where the agent's files are: paths relative to the project, and DATABASE_PATH as a file or a folder.

A relative path in ``config.yaml`` or ``.env`` is relative to that file's folder (the project's, for the
defaults), so ``python -m agent.loop`` run from any directory finds the same ledger and logs instead of
silently starting a fresh, empty ledger beside the current directory (issue 15, defect 15). A path given in the
real environment or on the command line is relative to the current directory, as a shell means it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LEDGER_FILE, LLM_CACHE_FILE = "agent.db", "llm_cache.db"  # their names inside a DATABASE_PATH folder

# The settings that are paths.
PATH_KEYS = (("logging", "dir"), ("database_path",), ("backtest", "cache_path"), ("backtest", "risk_free_file"),
             ("backup", "dir"), ("dashboard", "reports_dir"), ("market", "data_dir"), ("news", "file"))


def anchor_paths(raw: dict, base: Path, only: tuple[str, ...] | None = None) -> None:
    """Make the relative paths of the raw config (all of them, or the key ``only``) relative to ``base``."""
    for key_path in ((only,) if only in PATH_KEYS else ()) if only else PATH_KEYS:
        node: Any = raw
        for key in key_path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        value = node.get(key_path[-1]) if isinstance(node, dict) else None
        if isinstance(value, (str, Path)) and str(value).strip():
            given = Path(value).expanduser()
            node[key_path[-1]] = str(given if given.is_absolute() else base / given)


def ledger_file(database_path: Path) -> Path:
    """The SQLite ledger DATABASE_PATH names: the path itself, or ``agent.db`` inside it when it is a folder (the
    original guide's meaning). A path that does not exist yet is a folder unless it has a suffix (``agent.db``)."""
    p = Path(database_path)
    return p / LEDGER_FILE if p.is_dir() or (not p.exists() and not p.suffix) else p
