"""python -m agent.doctor (make doctor): run the checks, print each line with its status, exit 1 when a run is blocked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli import settings_from_args
from agent.doctor.checks import (
    Line,
    check_alerts,
    check_disk,
    check_embedded,
    check_latency,
    check_market,
    check_memory,
    check_ollama,
    check_storage,
    check_vision,
)
from agent.doctor.effective import effective_values
from agent.errors import ConfigError
from agent.ops.logs import setup_logging

MARKS = {"ok": "[ OK ]", "info": "[INFO]", "warn": "[WARN]", "fail": "[FAIL]"}


def run_checks(settings, time_embedded: bool = True) -> list[Line]:
    lines, view = check_ollama(settings)
    if view is not None and view.up:
        lines += check_latency(settings, view) + check_memory(view) + check_vision(settings, view)
    if view is None or not view.up or (view.missing and settings.llm.provider == "auto"):
        why = "LLM_PROVIDER=embedded" if view is None else "Ollama is not usable as configured"
        lines += check_embedded(settings, why, time_embedded)
    return lines + check_storage(settings) + check_disk(settings) + check_market(settings) + check_alerts(settings)


def render(lines: list[Line], config: list[tuple[str, str]]) -> str:
    out = []
    for line in lines:
        out.append(f"{MARKS[line.status]} {line.check:<8} {line.message}")
        if line.fix:
            out.append(f"{'':16}fix: {line.fix}")
    out.append("\nEffective configuration (config.yaml < .env < environment; secrets masked):")
    width = max((len(k) for k, _ in config), default=0)
    out += [f"  {key:<{width}}  {value}" for key, value in config]
    return "\n".join(out)


def report(settings, time_embedded: bool = True) -> tuple[str, int]:
    """The doctor's text and exit code (1 when something blocks a run) for ``settings``; ``time_embedded``
    off skips loading the embedded model to time it."""
    lines = run_checks(settings, time_embedded)
    failed = [line for line in lines if line.status == "fail"]
    summary = f"\n{len(failed)} problem(s) block a run." if failed else "\nNothing blocks a run."
    return render(lines, effective_values(settings)) + summary, 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.doctor", description=__doc__)
    parser.add_argument("--config", type=Path, help="config.yaml to check (default: the project's)")
    parser.add_argument("--env-file", type=Path, help="the .env file to read (default: .env in the project)")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"{MARKS['fail']} config   {exc}\n{'':16}fix: correct the key named above in .env or config.yaml")
        return 1
    setup_logging(settings, to_file=False)
    text, code = report(settings)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
