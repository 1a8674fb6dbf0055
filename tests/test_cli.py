"""The one-shot trace CLI: exit codes and messages for bad arguments and bad config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.eval.ollama_stub import free_port

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None, module: str = "agent.graph") -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300)


closed_port = free_port  # the name the CLI and process tests use


def test_help_describes_every_flag():
    out = run_cli("--help")
    assert out.returncode == 0
    for flag in ("--ticker", "--source", "--data-dir", "--provider", "--json", "--as-of"):
        assert flag in out.stdout


def test_bad_argument_exits_non_zero_with_message():
    out = run_cli("--ticker", "PETR4", "--source", "bloomberg")
    assert out.returncode == 2
    assert "invalid choice: 'bloomberg'" in out.stderr


def test_bad_config_value_exits_non_zero_naming_the_key(tmp_path):
    out = run_cli("--ticker", "PETR4", env={"MIN_CONFIDENCE": "2", "LOG_DIR": str(tmp_path)})
    assert out.returncode == 2
    assert "decision.min_confidence (env MIN_CONFIDENCE)" in out.stderr
    assert out.stdout == ""


def test_real_trading_refused_at_start(tmp_path):
    out = run_cli("--ticker", "PETR4", env={"ENABLE_REAL_TRADING": "true", "LOG_DIR": str(tmp_path)})
    assert out.returncode == 2 and "no broker integration" in out.stderr


def test_csv_source_without_data_dir_is_a_config_error(tmp_path):
    out = run_cli("--ticker", "PETR4", "--source", "csv", env={"LOG_DIR": str(tmp_path)})
    assert out.returncode == 2 and "--data-dir" in out.stderr


def test_explicit_ollama_that_does_not_answer_is_a_clear_error(tmp_path):
    env = {"OLLAMA_HOST": f"http://127.0.0.1:{closed_port()}", "LOG_DIR": str(tmp_path)}
    out = run_cli("--ticker", "PETR4", "--provider", "ollama", env=env)
    assert out.returncode == 3
    assert "did not answer" in out.stderr and "ollama serve" in out.stderr


def test_a_ticker_that_is_not_a_b3_code_is_refused(tmp_path):
    out = run_cli("--ticker", "../../etc/passwd", "--source", "sim", env={"LOG_DIR": str(tmp_path)})
    assert out.returncode == 2 and "--ticker" in out.stderr
