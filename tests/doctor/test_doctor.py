"""``make doctor`` against the Ollama stub: missing models, a slow model, no Ollama at all, masked secrets."""

from __future__ import annotations

import pytest

from agent.doctor.__main__ import main, report
from agent.doctor.checks import check_latency, check_ollama
from agent.eval.ollama_stub import OllamaStub, closed_port_url
from tests.conftest import make_settings

MODELS = {"sentiment": "smollm2:1.7b", "technical": "mistral:7b", "risk": "deepseek-r1:8b",
          "data_validation": "qwen2.5-coder:7b", "final_score": "gemma3:4b"}
TOKEN = "123456:SECRET-bot-token"


def settings_for(url: str, tmp_path, provider: str = "ollama", **environ: str):
    return make_settings({("ollama", "host"): url, ("llm", "provider"): provider,
                          ("logging", "dir"): tmp_path / "logs", ("database_path",): tmp_path / "data" / "agent.db",
                          **{("layers", layer, "model"): m for layer, m in MODELS.items()}}, environ)


def test_everything_pulled_and_fast_is_all_ok(tmp_path):
    with OllamaStub(models=MODELS.values()) as stub:
        stub.capabilities["gemma3:4b"] = ["completion", "vision"]
        text, code = report(settings_for(stub.url, tmp_path))
    assert code == 0, text
    assert "[FAIL]" not in text and "[WARN]" not in text
    assert "every layer's model is pulled" in text
    for layer, model in MODELS.items():
        assert f"[ OK ] latency  {layer} ({model})" in text
    assert "final_score (gemma3:4b) takes images" in text
    assert "LOG_DIR=" in text and "DATABASE_PATH=" in text and "MARKET_SOURCE=sim" in text
    # each model was asked for one token
    assert {r["model"] for r in stub.requests} == set(MODELS.values())
    assert all(r["options"]["num_predict"] == 1 and r["stream"] is False for r in stub.requests)


def test_missing_model_blocks_and_gives_the_pull_line(tmp_path):
    with OllamaStub(models=[m for m in MODELS.values() if m != "gemma3:4b"]) as stub:
        text, code = report(settings_for(stub.url, tmp_path))
    assert code == 1
    assert "[FAIL] ollama   model gemma3:4b for final_score (OLLAMA_MODEL_SENTIMENT) is not pulled" in text
    assert "fix: ollama pull gemma3:4b" in text
    assert "latency  final_score" not in text  # a missing model is not timed


def test_missing_model_under_auto_warns_and_reports_the_embedded_fallback(tmp_path):
    with OllamaStub(models=[m for m in MODELS.values() if m != "mistral:7b"]) as stub:
        text, code = report(settings_for(stub.url, tmp_path, provider="auto"), time_embedded=False)
    assert "[WARN] ollama   model mistral:7b" in text and "fix: ollama pull mistral:7b" in text
    assert "embedded" in text and "text-only" in text
    assert code == 0, text


def test_slow_model_is_flagged_with_a_smaller_model_for_its_layer(tmp_path):
    with OllamaStub(models=MODELS.values()) as stub:
        stub.model_delay_s["deepseek-r1:8b"] = 1.0
        settings = settings_for(stub.url, tmp_path)
        _, view = check_ollama(settings)
        lines = check_latency(settings, view, budgets=dict.fromkeys(MODELS, 0.5))
    by_layer = {line.message.split()[0]: line for line in lines}
    slow = by_layer["risk"]
    assert slow.status == "warn" and "over the 0.5 s budget" in slow.message
    # the guide's advice: a smaller pulled model that answered in time, on the layer's own variable
    assert slow.fix == "use a smaller model for this layer: OLLAMA_MODEL_REASONING=smollm2:1.7b"
    assert all(line.status == "ok" for layer, line in by_layer.items() if layer != "risk")


@pytest.mark.slow
def test_no_ollama_reports_the_embedded_setup_instead_of_failing(tmp_path):
    text, code = report(settings_for(closed_port_url(), tmp_path, provider="auto"))  # loads the embedded model
    assert code == 0, text
    assert "[WARN] ollama" in text and "fix: start it with `ollama serve`" in text
    assert "[ OK ] embedded the embedded models serve the cascade" in text and "text-only" in text
    assert "[ OK ] memory" in text and "of embedded models" in text
    assert "latency  embedded " in text and "s for one token" in text


def test_no_ollama_blocks_when_ollama_is_required(tmp_path):
    text, code = report(settings_for(closed_port_url(), tmp_path, provider="ollama"))
    assert code == 1 and "[FAIL] ollama" in text


def test_effective_config_shows_units_and_masks_secrets(tmp_path):
    settings = settings_for(closed_port_url(), tmp_path, provider="auto", TELEGRAM_TOKEN=TOKEN,
                            TELEGRAM_CHAT_ID="42", EMAIL_SENDER="me@gmail.com", EMAIL_PASSWORD="app_password")
    text, _ = report(settings, time_embedded=False)
    assert TOKEN not in text and "app_password" not in text
    assert "TELEGRAM_TOKEN" in text and "*** (set)" in text
    assert "SMTP_PASSWORD / EMAIL_PASSWORD" in text
    assert "ANALYSIS_INTERVAL" in text and " s\n" in text
    assert "alerts go to telegram, email (SMTP smtp.gmail.com)" in text


def test_config_error_exits_non_zero_naming_the_key(monkeypatch, capsys):
    monkeypatch.setenv("MIN_CONFIDENCE", "7")
    assert main(["--config", "config.yaml"]) == 1
    assert "MIN_CONFIDENCE" in capsys.readouterr().out


def test_guide_placeholders_for_alerts_are_reported(tmp_path):
    settings = settings_for(closed_port_url(), tmp_path, provider="auto", TELEGRAM_TOKEN="seu_token_telegram",
                            TELEGRAM_CHAT_ID="seu_chat_id", EMAIL_SENDER="seu@email.com", EMAIL_PASSWORD="app_password")
    text, code = report(settings, time_embedded=False)
    assert "[WARN] alerts   telegram is configured but apprise does not recognise its settings" in text
    assert "email.com is not a provider apprise knows" in text and "fix: set SMTP_HOST" in text
    assert code == 0  # alerts never block a run


def test_doctor_fails_on_the_storage_the_loop_would_refuse(tmp_path):
    """The loop stops at start-up on these (exit 2); the doctor must not say "Nothing blocks a run"."""
    from agent.doctor.checks import check_storage
    from tests.conftest import make_settings

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(bytes(range(256)) * 20)
    log_file = tmp_path / "logfile"
    log_file.write_text("not a folder")
    cases = {
        "DATABASE_PATH": make_settings({("database_path",): garbage, ("logging", "dir"): tmp_path / "logs"}),
        "LOG_DIR": make_settings({("database_path",): tmp_path / "data", ("logging", "dir"): log_file}),
        "DATABASE_URL": make_settings({("database_path",): tmp_path / "data", ("logging", "dir"): tmp_path / "logs",
                                       ("database_url",): closed_port_url().replace("http://", "postgresql://u:secret@") + "/x"}),
    }
    for key, settings in cases.items():
        failed = [line for line in check_storage(settings) if line.status == "fail"]
        assert len(failed) == 1 and failed[0].message.startswith(f"{key}:"), (key, failed)
        assert "secret" not in failed[0].message
    fresh = check_storage(make_settings({("database_path",): tmp_path / "new", ("logging", "dir"): tmp_path / "l"}))
    assert [line.status for line in fresh] == ["info"] and not (tmp_path / "new" / "agent.db").exists()
