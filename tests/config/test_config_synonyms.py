"""The original guide's variable names for settings the project names its own way: both work, never disagree."""

from __future__ import annotations

import pytest

from agent.config import ENV_KEYS
from agent.errors import ConfigError
from tests.conftest import make_settings

HOOK = "https://hooks.slack.com/services/T000/B000/SECRETHOOK"


@pytest.mark.parametrize(("guide", "own", "value", "read"), [
    ("SLACK_WEBHOOK", "SLACK_WEBHOOK_URL", HOOK, lambda s: s.alerts.slack_webhook_url.get_secret_value()),
    ("EMAIL_SENDER", "ALERT_EMAIL_FROM", "me@gmail.com", lambda s: s.alerts.email_from),
    ("EMAIL_PASSWORD", "SMTP_PASSWORD", "app_password", lambda s: s.secrets.smtp_password.get_secret_value()),
    ("ENABLE_METRICS", "METRICS_ENABLED", "false", lambda s: str(s.metrics.enabled).lower()),
])
def test_either_name_sets_the_setting_and_both_may_agree(guide, own, value, read):
    assert ENV_KEYS[guide] == ENV_KEYS[own]
    assert read(make_settings(environ={guide: value})) == value
    assert read(make_settings(environ={own: value})) == value
    assert read(make_settings(environ={guide: value, own: value})) == value


def test_both_names_with_different_values_is_an_error_naming_the_two():
    with pytest.raises(ConfigError) as err:
        make_settings(environ={"SLACK_WEBHOOK": HOOK, "SLACK_WEBHOOK_URL": HOOK + "X",
                               "ENABLE_METRICS": "true", "METRICS_ENABLED": "0"})
    message = str(err.value)
    assert "SLACK_WEBHOOK and SLACK_WEBHOOK_URL" in message and "ENABLE_METRICS and METRICS_ENABLED" in message
    assert "SECRETHOOK" not in message  # secrets are never quoted


def test_booleans_spelled_differently_agree():
    assert make_settings(environ={"ENABLE_METRICS": "true", "METRICS_ENABLED": "1"}).metrics.enabled is True


def test_guide_monitoring_and_apprise_keys():
    s = make_settings(environ={"GRAFANA_PORT": "3001", "APPRISE_URLS": "ntfy://topic"})
    assert s.metrics.grafana_port == 3001
    assert s.secrets.apprise_urls.get_secret_value() == "ntfy://topic"
    with pytest.raises(ConfigError, match="GRAFANA_PORT"):
        make_settings(environ={"GRAFANA_PORT": "70000"})
