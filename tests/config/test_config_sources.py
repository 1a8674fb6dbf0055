"""Where settings come from: .env lines that are not KEY=value, two names (the project's and the original
guide's) for one setting, paths relative to the project (not the current directory), DATABASE_PATH as a folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT, load_settings
from agent.errors import ConfigError


def load(tmp_path: Path, env_text: str | None = None, environ: dict[str, str] | None = None):
    env_file = None
    if env_text is not None:
        env_file = tmp_path / ".env"
        env_file.write_text(env_text)
    return load_settings(env_file=env_file, environ=environ or {})


def error_for(tmp_path: Path, env_text: str | None = None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env_text, environ)
    return str(err.value)


# --------------------------------------------------------------------------- .env lines (issue 15, defect 7)

@pytest.mark.parametrize(("line", "key"), [("MIN_CONFIDENCE 0.95", "MIN_CONFIDENCE"),
                                           ("MAX_POSITION_SIZE: 0.02", "MAX_POSITION_SIZE"),
                                           ("MIN_CONFIDENCE", "MIN_CONFIDENCE"),
                                           ('NEWS_FILE="unclosed', "NEWS_FILE")])
def test_a_line_that_is_not_key_value_stops_start_up_naming_it(tmp_path, line, key):
    msg = error_for(tmp_path, f"B3_TICKERS=PETR4\n{line}\nLOG_LEVEL=INFO\n")
    assert ".env line 2" in msg and key in msg and "KEY=value" in msg


def test_a_bad_line_holding_a_secret_does_not_echo_it(tmp_path):
    msg = error_for(tmp_path, "BRAPI_TOKEN abc-secret-123\n")
    assert "line 1" in msg and "BRAPI_TOKEN" in msg and "abc-secret-123" not in msg


def test_comments_blank_lines_export_and_inline_comments_still_parse(tmp_path):
    s = load(tmp_path, "# a comment\n\nexport MIN_CONFIDENCE=0.8\nB3_TICKERS=PETR4   # the stock\n")
    assert s.decision.min_confidence == 0.8 and s.tickers == ("PETR4",)


# --------------------------------------------------------------------------- two names for one setting

def test_the_guide_name_and_the_project_name_both_work(tmp_path):
    assert load(tmp_path, "ENABLE_METRICS=false\n").metrics.enabled is False
    assert load(tmp_path, "METRICS_ENABLED=false\n").metrics.enabled is False
    assert load(tmp_path, "ENABLE_METRICS=false\nMETRICS_ENABLED=false\n").metrics.enabled is False


@pytest.mark.parametrize(("a", "b"), [("ENABLE_METRICS", "METRICS_ENABLED"), ("SLACK_WEBHOOK", "SLACK_WEBHOOK_URL"),
                                      ("EMAIL_PASSWORD", "SMTP_PASSWORD")])
def test_two_names_set_to_different_values_is_an_error_naming_both(tmp_path, a, b):
    msg = error_for(tmp_path, f"{a}=https://one.example/x\n{b}=https://two.example/y\n")
    assert a in msg and b in msg and "one.example" not in msg  # values are not echoed (they may be secrets)
    assert a in error_for(tmp_path, environ={a: "true", b: "false"})


def test_the_environment_beats_dotenv_whichever_name_each_uses(tmp_path):
    assert load(tmp_path, "ENABLE_METRICS=true\n", {"METRICS_ENABLED": "false"}).metrics.enabled is False


def test_brapi_base_url_reaches_the_brapi_adapter(tmp_path):
    from agent.market.sources import _live

    s = load(tmp_path, environ={"BRAPI_BASE_URL": "http://127.0.0.1:9/api/", "DATABASE_PATH": str(tmp_path / "a.db")})
    assert s.market.brapi_base_url == "http://127.0.0.1:9/api"
    assert _live(s, "brapi").inner.inner.base_url == "http://127.0.0.1:9/api"  # behind the cache and the retries


@pytest.mark.parametrize(("base_url", "host", "path"), [
    ("https://brapi.dev/api", "brapi.dev", "/api/quote/PETR4"),
    ("https://mirror.example/", "mirror.example", "/api/quote/PETR4"),  # the bare site: its /api
    ("http://127.0.0.1:9/v2/api", "127.0.0.1", "/v2/api/quote/PETR4")])
def test_the_brapi_adapter_asks_under_the_api_root(base_url, host, path):
    from tests.market.test_live_data import BrapiServer

    server = BrapiServer()
    provider, _ = server.provider(base_url=base_url)
    provider.get_bars("PETR4", lookback=20)
    (req,) = server.requests
    assert (req.url.host, req.url.path) == (host, path)


# --------------------------------------------------------------------------- paths (issue 15, defect 15)

def test_default_paths_are_the_projects_whatever_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load(tmp_path)
    assert s.logging.dir == PROJECT_ROOT / "logs"
    assert s.ledger_path == PROJECT_ROOT / "data" / "agent.db"
    assert s.llm_cache_path == PROJECT_ROOT / "data" / "llm_cache.db"


def test_a_relative_path_in_dotenv_is_relative_to_the_dotenv_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(tmp_path)
    s = load(project, "LOG_DIR=mylogs\nDATABASE_PATH=state/ledger.db\n")
    assert s.logging.dir == project / "mylogs" and s.ledger_path == project / "state" / "ledger.db"


def test_a_relative_path_in_the_environment_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load(tmp_path, environ={"LOG_DIR": "here"})
    assert s.logging.dir.resolve() == tmp_path / "here"


# --------------------------------------------------------------------------- DATABASE_PATH as a folder

def test_database_path_as_a_folder_holds_the_ledger_and_the_caches(tmp_path):
    (tmp_path / "existing").mkdir()
    for folder in (tmp_path / "existing", tmp_path / "not-yet"):
        s = load(tmp_path, environ={"DATABASE_PATH": str(folder)})
        assert s.ledger_path == folder / "agent.db" and s.llm_cache_path == folder / "llm_cache.db"
    s = load(tmp_path, environ={"DATABASE_PATH": str(tmp_path / "ledger.sqlite")})
    assert s.ledger_path == tmp_path / "ledger.sqlite"  # a file path still works
    s = load(tmp_path, environ={"DATABASE_PATH": str(tmp_path / "f"), "LLM_CACHE_PATH": str(tmp_path / "c.db")})
    assert s.llm_cache_path == tmp_path / "c.db"  # LLM_CACHE_PATH still wins


def test_two_names_with_the_same_boolean_written_differently_agree(tmp_path):
    assert load(tmp_path, "ENABLE_METRICS=yes\nMETRICS_ENABLED=true\n").metrics.enabled is True
