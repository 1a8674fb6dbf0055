"""Configuration: validated once, unknown keys rejected, errors name the key and the allowed values."""

from __future__ import annotations

import pytest

from agent.config import load_settings
from agent.errors import ConfigError
from agent.ops.logs import redact, secret_values
from tests.conftest import make_settings


def error_for(environ=None, yaml_text=None, tmp_path=None, env_file_text=None) -> str:
    kwargs = {"environ": environ or {}, "env_file": None}
    if yaml_text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml_text)
        kwargs["config_path"] = path
    if env_file_text is not None:
        env = tmp_path / ".env"
        env.write_text(env_file_text)
        kwargs["env_file"] = env
    with pytest.raises(ConfigError) as err:
        load_settings(**kwargs)
    return str(err.value)


def test_defaults_load_and_match_the_design():
    s = make_settings()
    assert s.decision.min_confidence == 0.75
    assert s.layers.sentiment.min_score == 0.75 and s.layers.technical.min_score == 0.60
    assert [s.layers.model_for(n) for n in ("sentiment", "technical", "risk", "data_validation", "final_score")] == [
        "smollm2:1.7b", "mistral:7b", "deepseek-r1:8b", "qwen2.5-coder:7b", "gemma3:4b"]
    assert s.metrics.bind == "127.0.0.1"


def test_environment_overrides_yaml_and_dotenv(tmp_path):
    env = tmp_path / ".env"
    env.write_text("MIN_CONFIDENCE=0.8\nB3_TICKERS=petr4, vale3.SA\nBRAPI_TOKEN=\n")
    s = load_settings(env_file=env, environ={"MIN_CONFIDENCE": "0.9"})
    assert s.decision.min_confidence == 0.9  # environment beats .env
    assert s.tickers == ("PETR4", "VALE3")  # .env beats config.yaml, tickers normalised
    assert s.secrets.brapi_token is None  # an empty value means unset


def test_bad_enum_names_key_env_and_allowed_values():
    msg = error_for({"LLM_PROVIDER": "openai"})
    assert "llm.provider (env LLM_PROVIDER)" in msg
    assert "'auto', 'ollama' or 'embedded'" in msg


def test_out_of_range_value_names_the_key():
    msg = error_for({"MIN_CONFIDENCE": "1.5"})
    assert "decision.min_confidence (env MIN_CONFIDENCE) = '1.5'" in msg
    assert "less than or equal to 1" in msg


def test_non_numeric_value_names_the_key():
    assert "risk.max_position_size (env MAX_POSITION_SIZE)" in error_for({"MAX_POSITION_SIZE": "ten"})


def test_real_trading_is_refused_with_a_clear_message():
    msg = error_for({"ENABLE_REAL_TRADING": "true"})
    assert "enable_real_trading (env ENABLE_REAL_TRADING)" in msg
    assert "no broker integration" in msg


def test_simulation_mode_cannot_be_turned_off():
    assert "simulation_mode (env SIMULATION_MODE)" in error_for({"SIMULATION_MODE": "false"})


def test_unknown_yaml_key_is_rejected(tmp_path):
    msg = error_for(yaml_text="layers:\n  sentimnet: {model: x, min_score: 0.5}\n", tmp_path=tmp_path)
    assert "layers.sentimnet" in msg and "unknown key" in msg


def test_unknown_dotenv_key_is_rejected(tmp_path):
    msg = error_for(env_file_text="MIN_CONFIDANCE=0.9\n", tmp_path=tmp_path)
    assert "MIN_CONFIDANCE" in msg and ".env.example" in msg


def test_invalid_yaml_and_bad_tickers(tmp_path):
    assert "not valid YAML" in error_for(yaml_text="layers: [unclosed", tmp_path=tmp_path)
    assert "tickers (env B3_TICKERS)" in error_for({"B3_TICKERS": "PETR4,not a ticker!"})


def test_secrets_never_appear_in_reprs_or_errors():
    s = make_settings(environ={"BRAPI_TOKEN": "tok-123456"})
    assert "tok-123456" not in repr(s) and "tok-123456" not in str(s.model_dump())
    assert redact("url?token=tok-123456", *secret_values(s)) == "url?token=***"


def test_fingerprint_changes_with_decision_settings_only():
    base = make_settings()
    assert base.fingerprint() == make_settings({("logging", "dir"): "elsewhere"}).fingerprint()
    assert base.fingerprint() != make_settings({("risk", "max_position_fraction"): 0.05}).fingerprint()


def test_an_intraday_primary_timeframe_is_refused():
    """The risk rules annualise daily bars: a 5m primary would silently switch them off."""
    assert "market.timeframes.primary (env TIMEFRAME_PRIMARY)" in error_for({"TIMEFRAME_PRIMARY": "5m"})
