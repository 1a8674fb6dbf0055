"""Prompts live as text files in ``prompts/``: one per layer, with optional per-ticker overrides
(``prompts/PETR4/technical.md`` replaces ``prompts/technical.md`` for PETR4 only).

Each file has a ``## System`` and a ``## User`` section, with ``$name`` placeholders
(``string.Template``). Placeholders are checked when the file is loaded, and each prompt's
hash is its version, which goes into the decision id and the record.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from agent.config import LAYER_NAMES, PROJECT_ROOT
from agent.errors import ConfigError

DEFAULT_PROMPT_DIR = PROJECT_ROOT / "prompts"
PLACEHOLDERS = frozenset({"ticker", "bar_date", "inputs_json", "schema_json"})
SECTION = re.compile(r"^##\s+(System|User)\s*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    layer: str
    path: Path
    system: Template
    user: Template
    version: str

    def render(self, **values: str) -> tuple[str, str]:
        return self.system.substitute(values), self.user.substitute(values)


def _parse(layer: str, path: Path) -> Prompt:
    text = path.read_text(encoding="utf-8")
    parts = SECTION.split(text)
    # parts = [preamble, name1, body1, name2, body2]
    sections = {parts[i].lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if set(sections) != {"system", "user"}:
        raise ConfigError(f"prompt {path}: needs exactly one '## System' and one '## User' section")
    for name, body in sections.items():
        tpl = Template(body)
        if not tpl.is_valid():
            raise ConfigError(f"prompt {path} ({name}): malformed placeholder; write $$ for a literal dollar sign")
        unknown = set(tpl.get_identifiers()) - PLACEHOLDERS
        if unknown:
            raise ConfigError(
                f"prompt {path} ({name}): unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return Prompt(layer, path, Template(sections["system"]), Template(sections["user"]), version)


class PromptLibrary:
    """Loads every layer's prompt once and resolves per-ticker overrides."""

    def __init__(self, root: Path = DEFAULT_PROMPT_DIR):
        self.root = Path(root)
        self._base = {}
        for layer in LAYER_NAMES:
            path = self.root / f"{layer}.md"
            if not path.is_file():
                raise ConfigError(f"prompt file missing: {path}")
            self._base[layer] = _parse(layer, path)
        self._overrides: dict[tuple[str, str], Prompt] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.md")):
                if path.stem not in LAYER_NAMES:
                    raise ConfigError(f"prompt override {path}: {path.stem!r} is not a layer ({', '.join(LAYER_NAMES)})")
                self._overrides[(folder.name.upper(), path.stem)] = _parse(path.stem, path)

    def get(self, layer: str, ticker: str) -> Prompt:
        return self._overrides.get((ticker.upper(), layer)) or self._base[layer]

    def versions(self, ticker: str) -> dict[str, str]:
        return {layer: self.get(layer, ticker).version for layer in LAYER_NAMES}
