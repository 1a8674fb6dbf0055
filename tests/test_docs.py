"""The docs cannot drift from the code: the variables in docs/configuration.md are the config's own
environment table, and the layout map in agent/__init__.py is the folder and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import agent
from agent.config import ENV_KEYS

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())  # wherever tests/ puts us
AGENT_DIR = ROOT / "agent"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"

CODE_SPAN = re.compile(r"`([^`]+)`")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in ``text``: a list of rows (header included, separator row left out), each a list
    of stripped cells. Escaped pipes (``\\|``) stay inside their cell."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", stripped.strip("|"))]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def table_with_header(text: str, first_cell: str) -> list[list[str]]:
    """The rows (without the header) of the table whose first header cell is ``first_cell``."""
    found = [t for t in markdown_tables(text) if t and t[0] and t[0][0].lower() == first_cell]
    assert len(found) == 1, f"expected one table headed {first_cell!r}, found {len(found)}"
    return found[0][1:]


def code(cell: str) -> str:
    """The first `code span` of a cell (the cell itself when there is none)."""
    m = CODE_SPAN.search(cell)
    return m.group(1) if m else cell


def documented_env() -> dict[str, str]:
    rows = table_with_header(CONFIG_DOC.read_text(encoding="utf-8"), "variable")
    documented: dict[str, str] = {}
    for row in rows:
        assert len(row) >= 4, f"docs/configuration.md: row {row} needs variable, config key, meaning, default"
        name = code(row[0])
        assert name not in documented, f"docs/configuration.md lists {name} twice"
        documented[name] = code(row[1])
    return documented


def test_every_environment_variable_is_documented_with_its_config_key():
    documented = documented_env()
    missing = sorted(set(ENV_KEYS) - set(documented))
    assert not missing, f"docs/configuration.md lacks {missing} (see agent/config/env.py ENV_KEYS)"
    wrong = {name: (documented[name], ".".join(path)) for name, path in ENV_KEYS.items()
             if documented[name] != ".".join(path)}
    assert not wrong, f"docs/configuration.md gives the wrong config key (doc, code): {wrong}"


def test_configuration_doc_lists_no_variable_the_config_does_not_read():
    unknown = sorted(set(documented_env()) - set(ENV_KEYS))
    assert not unknown, f"docs/configuration.md lists variables agent.config.ENV_KEYS does not know: {unknown}"


def test_table_parser_reads_cells_and_escaped_pipes():
    text = "intro\n\n| a | b |\n|---|:---:|\n| `X` | `sim\\|csv` |\n\nafter\n| c |\n|---|\n| d |\n"
    assert markdown_tables(text) == [[["a", "b"], ["`X`", "`sim|csv`"]], [["c"], ["d"]]]


def present_in_agent() -> set[str]:
    """The modules and package folders directly under agent/, as LAYOUT names them (``x.py``, ``pkg/``)."""
    names = set()
    for p in AGENT_DIR.iterdir():
        if p.name.startswith(("__", ".")):
            continue  # __init__.py (where the map lives), __pycache__, __main__.py if one appears
        if p.is_file() and p.suffix == ".py":
            names.add(p.name)
        elif p.is_dir() and (p / "__init__.py").is_file():
            names.add(p.name + "/")
    return names


def test_layout_map_lists_exactly_what_is_in_agent():
    mapped, present = set(agent.LAYOUT), present_in_agent()
    assert not present - mapped, f"agent/__init__.py LAYOUT lacks {sorted(present - mapped)}"
    assert not mapped - present, f"agent/__init__.py LAYOUT names what is not in agent/: {sorted(mapped - present)}"
    assert all(isinstance(v, str) and v.strip() and "\n" not in v for v in agent.LAYOUT.values()), \
        "each LAYOUT entry is one non-empty line"


def test_readme_layout_table_matches_the_map():
    rows = table_with_header(README.read_text(encoding="utf-8"), "path")
    listed = {code(row[0]).removeprefix("agent/") for row in rows if code(row[0]).startswith("agent/")}
    expected = set(agent.LAYOUT)
    assert not expected - listed, f"README's layout table lacks {sorted('agent/' + n for n in expected - listed)}"
    assert not listed - expected, f"README's layout table lists {sorted('agent/' + n for n in listed - expected)}, " \
                                  "which agent.LAYOUT does not"


def test_readme_links_to_docs_that_exist_and_stays_a_front_page():
    text = README.read_text(encoding="utf-8")
    links = set(re.findall(r"\]\((docs/[^)#]+)", text))
    assert links, "README links to docs/"
    assert not [link for link in links if not (ROOT / link).is_file()], "README links to missing docs"
    assert len(text.splitlines()) < 200
