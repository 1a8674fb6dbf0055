"""Alerts: message formatting, the three channels against loopback stubs, and a queue that never blocks trading."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from loguru import logger
from pydantic import SecretStr, ValidationError

from agent.errors import AlertSendError
from agent.ops.alerts import (
    Alert,
    AlertQueue,
    EmailChannel,
    SlackChannel,
    TelegramChannel,
    build_alerts,
    channels_from_settings,
    halt_alert,
    stall_alert,
    trade_alert,
)
from agent.ops.metrics import COUNTERS
from tests.conftest import make_settings
from tests.support.alert_stubs import HttpStub, SmtpStub, wait_until

TOKEN = "123456:SECRET-bot-token"
WEBHOOK_PATH = "/services/T000/B000/SECRETHOOK"
OPEN = {"action": "open", "ticker": "PETR4", "qty": 100, "price": 10.01, "fees": 2.33, "profit": None,
        "decision_id": "PETR4-2025-06-30-abc", "mode": "simulation"}
STOP = {**OPEN, "action": "close_stop", "price": 8.80, "fees": 2.1, "profit": -120.5}


def telegram_settings(url: str, **more):
    return make_settings({("alerts", "telegram_chat_id"): "42", ("alerts", "telegram_api_url"): url,
                          ("alerts", "timeout_s"): 2.0, **more}, {"TELEGRAM_TOKEN": TOKEN})


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Everything loguru logs during the test, at every level."""
    buf = io.StringIO()
    sink = logger.add(buf, level="TRACE", format="{level} {message}")
    yield buf
    logger.remove(sink)


@pytest.fixture
def queues() -> Iterator[list[AlertQueue]]:
    """Alert queues made by a test, closed at teardown even when it fails."""
    made: list[AlertQueue] = []
    yield made
    for q in made:
        q.close(timeout=0.5)


class BlockingChannel:
    """A channel whose send waits for ``release``: a worker stuck in a send, with no timing involved."""

    name = "blocking"
    secrets = ()

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.entered.set()
        self.release.wait(30)
        self.sent.append(alert)


def returns_without_blocking(call, *args):
    """Run ``call`` in a helper thread; its result, or a failure if it is still blocked after a generous bound."""
    result: list[object] = []
    helper = threading.Thread(target=lambda: result.append(call(*args)), daemon=True)
    helper.start()
    helper.join(5)
    assert not helper.is_alive(), f"{call.__name__} blocked"
    return result[0]


# --- formatting ---------------------------------------------------------------------------------------------------

def test_buy_alert_from_an_open_trade_is_marked_paper():
    alert = trade_alert(OPEN)
    assert alert.kind == "buy"
    assert alert.subject == "[paper] BUY PETR4"
    assert "Bought 100 PETR4 @ 10.01 (fees 2.33)" in alert.text
    assert "PETR4-2025-06-30-abc" in alert.text
    assert alert.message.startswith("[paper] BUY PETR4\n")


@pytest.mark.parametrize(("action", "why"), [("close_stop", "stop"), ("close_take_profit", "take-profit")])
def test_exit_alert_names_the_exit_and_the_profit(action, why):
    alert = trade_alert({**STOP, "action": action})
    assert alert.kind == "exit"
    assert alert.title == f"EXIT PETR4 ({why})"
    assert "Sold 100 PETR4 @ 8.80" in alert.text and "Profit -120.50" in alert.text


def test_unknown_trade_action_is_info_not_an_error():
    alert = trade_alert({"action": "split", "ticker": "VALE3"})
    assert alert.kind == "info" and "VALE3" in alert.title and "?" in alert.text


def test_halt_and_stall_alerts():
    halt = halt_alert("daily loss 3.2% > 3.0%", {"equity": 96800.123456, "open_positions": 2})
    assert halt.kind == "halt" and halt.subject.startswith("[paper] ")
    assert "daily loss 3.2% > 3.0%" in halt.text and "equity: 96800.1235" in halt.text
    assert "open_positions: 2" in halt.text
    stall = stall_alert(912.4, 300)
    assert stall.kind == "stall" and "912 s" in stall.text and "300 s" in stall.text


def test_alert_kind_is_validated():
    with pytest.raises(ValidationError):
        Alert(kind="sell", title="x")


# --- configuration --------------------------------------------------------------------------------------------------

def test_channels_follow_the_settings():
    assert channels_from_settings(make_settings()) == []
    settings = make_settings(
        {("alerts", "telegram_chat_id"): "42", ("alerts", "smtp_host"): "mail.local",
         ("alerts", "email_to"): "a@x.org, b@x.org", ("alerts", "smtp_user"): "bot@x.org"},
        {"TELEGRAM_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": "https://hooks.slack.com" + WEBHOOK_PATH,
         "SMTP_PASSWORD": "pw-secret"})
    telegram, slack, email = channels_from_settings(settings)
    assert isinstance(telegram, TelegramChannel) and telegram.chat_id == "42"
    assert isinstance(slack, SlackChannel)
    assert isinstance(email, EmailChannel)
    assert email.to == ("a@x.org", "b@x.org") and email.sender == "bot@x.org"
    assert email.password.get_secret_value() == "pw-secret"
    assert TOKEN not in repr(telegram) and "SECRETHOOK" not in repr(slack) and "pw-secret" not in repr(email)


def test_half_configured_channel_is_off_and_reported(log_text):
    assert channels_from_settings(make_settings(environ={"TELEGRAM_TOKEN": TOKEN})) == []
    assert "TELEGRAM_CHAT_ID" in log_text.getvalue()


def test_no_channels_means_disabled_and_silent(log_text):
    alerts = build_alerts(make_settings())
    before = log_text.getvalue()
    assert not alerts.enabled
    assert alerts.notify(trade_alert(OPEN)) is False
    assert log_text.getvalue() == before  # nothing logged per alert
    assert COUNTERS.snapshot() == []
    assert alerts.close(timeout=1.0) is True


# --- channels against loopback stubs ----------------------------------------------------------------------------------

def test_all_three_channels_deliver(queues):
    with HttpStub() as telegram, HttpStub(reply="ok") as slack, SmtpStub() as smtp:
        settings = make_settings(
            {("alerts", "telegram_chat_id"): "42", ("alerts", "telegram_api_url"): telegram.url,
             ("alerts", "smtp_host"): "127.0.0.1", ("alerts", "smtp_port"): smtp.port,
             ("alerts", "smtp_starttls"): False, ("alerts", "email_to"): "ops@example.org",
             ("alerts", "email_from"): "agent@example.org", ("alerts", "timeout_s"): 2.0},
            {"TELEGRAM_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": slack.url + WEBHOOK_PATH})
        alerts = build_alerts(settings)
        queues.append(alerts)
        assert alerts.channel_names == ["telegram", "slack", "email"]

        assert alerts.notify(trade_alert(OPEN)) is True
        assert alerts.close(timeout=5.0) is True

        assert telegram.requests == [{"path": f"/bot{TOKEN}/sendMessage",
                                      "json": {"chat_id": "42", "text": trade_alert(OPEN).message}}]
        assert slack.requests == [{"path": WEBHOOK_PATH, "json": {"text": trade_alert(OPEN).message}}]
        [mail] = smtp.messages
        assert mail["to"] == ["ops@example.org"] and mail["from"] == "agent@example.org"
        assert mail["message"]["Subject"] == "[paper] BUY PETR4"
        assert "Bought 100 PETR4 @ 10.01" in mail["message"].get_content()
        for channel in ("telegram", "slack", "email"):
            assert COUNTERS.get("alerts_sent_total", channel=channel) == 1
        assert COUNTERS.get("alerts_failed_total") == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_with_the_password():
    with SmtpStub(user="bot@x.org", password="pw-secret") as smtp:
        channel = EmailChannel(host="127.0.0.1", port=smtp.port, to=("ops@x.org",), sender="bot@x.org",
                               user="bot@x.org", password=SecretStr("pw-secret"), starttls=False, timeout_s=2.0)
        channel.send(halt_alert("drawdown"))
        assert smtp.logins == [("bot@x.org", "pw-secret")]
        assert smtp.message()["Subject"] == "[paper] Trading HALTED (kill switch)"


def test_telegram_not_ok_is_a_failure():
    with HttpStub(reply={"ok": False, "description": "Bad Request: chat not found"}) as stub:
        channel = TelegramChannel(token=SecretStr(TOKEN), chat_id="42", api_url=stub.url, timeout_s=2.0)
        with pytest.raises(AlertSendError) as err:
            channel.send(stall_alert(900, 300))
        assert err.value.kind == "not_ok" and "chat not found" in str(err.value)
        assert TOKEN not in str(err.value)


def test_http_500_is_retried_once_then_counted(queues, log_text):
    with HttpStub(status=500, reply="internal error") as slack:
        alerts = AlertQueue([SlackChannel(SecretStr(slack.url + WEBHOOK_PATH), timeout_s=2.0)], backoff_s=0.01)
        queues.append(alerts.start())
        assert alerts.notify(trade_alert(STOP)) is True
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="slack", kind="http_500") == 1)
        assert slack.count() == 2  # the first try and one retry
        assert COUNTERS.get("alerts_sent_total") == 0
        assert "http_500" in log_text.getvalue() and "SECRETHOOK" not in log_text.getvalue()


def test_http_4xx_is_not_retried(queues):
    with HttpStub(status=404, reply={"ok": False, "description": "Not Found"}) as telegram:
        alerts = AlertQueue([TelegramChannel(SecretStr(TOKEN), "42", telegram.url, timeout_s=2.0)], backoff_s=0.01)
        queues.append(alerts.start())
        alerts.notify(stall_alert(900, 300))
        assert alerts.close(timeout=5.0) is True
        assert telegram.count() == 1
        assert COUNTERS.get("alerts_failed_total", channel="telegram", kind="http_404") == 1


def test_telegram_token_never_reaches_the_logs(queues, log_text):
    # Telegram's own error text may quote the token; the logged failure must mask it.
    with HttpStub(status=401, reply={"ok": False, "description": f"Unauthorized: bot{TOKEN} rejected"}) as telegram:
        alerts = build_alerts(telegram_settings(telegram.url))
        queues.append(alerts)
        alerts.notify(trade_alert(OPEN))
        assert alerts.close(timeout=5.0) is True
    logged = log_text.getvalue()
    assert "http_401" in logged and "Unauthorized: bot***" in logged
    assert TOKEN not in logged and "SECRET" not in logged


# --- the queue never blocks the caller --------------------------------------------------------------------------------

def test_hanging_endpoint_holds_neither_the_caller_nor_other_channels(queues):
    # A 30 s timeout: whatever returns or arrives here did so while Telegram was still hanging.
    with HttpStub(hang=True) as telegram, HttpStub(reply="ok") as slack:
        channels = [TelegramChannel(SecretStr(TOKEN), "42", telegram.url, timeout_s=30.0),
                    SlackChannel(SecretStr(slack.url + WEBHOOK_PATH), timeout_s=30.0)]
        alerts = AlertQueue(channels)
        queues.append(alerts.start())

        assert returns_without_blocking(alerts.notify, trade_alert(OPEN)) is True
        assert telegram.entered.wait(5)
        assert wait_until(lambda: slack.count() == 1)  # not queued behind the hanging Telegram send
        assert returns_without_blocking(alerts.notify, trade_alert(STOP)) is True
        assert wait_until(lambda: slack.count() == 2)
        assert slack.requests[1]["json"]["text"].startswith("[paper] EXIT PETR4 (stop)")

        assert returns_without_blocking(alerts.close, 0.2) is False  # bounded, with a send in flight
        assert COUNTERS.get("alerts_dropped_total", reason="shutdown", channel="telegram") == 1  # the EXIT
        assert COUNTERS.get("alerts_sent_total", channel="slack") == 2
        assert COUNTERS.get("alerts_failed_total") == 0  # Telegram is still hanging
        telegram.release.set()
        # The abandoned worker still finishes its one send, and takes nothing more.
        assert wait_until(lambda: COUNTERS.get("alerts_sent_total", channel="telegram") == 1)
        assert telegram.count() == 1


def test_hanging_endpoint_fails_after_its_timeout_and_later_alerts_go_out(queues):
    with HttpStub(hang=True) as telegram, HttpStub(reply="ok") as slack:
        channels = [TelegramChannel(SecretStr(TOKEN), "42", telegram.url, timeout_s=0.5),
                    SlackChannel(SecretStr(slack.url + WEBHOOK_PATH), timeout_s=0.5)]
        alerts = AlertQueue(channels, backoff_s=0.01)
        queues.append(alerts.start())

        assert alerts.notify(trade_alert(OPEN)) is True
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="telegram", kind="ReadTimeout") == 1)
        assert telegram.count() == 1  # a timeout is not retried
        assert alerts.notify(trade_alert(STOP)) is True
        assert wait_until(lambda: telegram.count() == 2 and slack.count() == 2)
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="telegram") == 2)
        assert COUNTERS.get("alerts_sent_total", channel="slack") == 2


def test_full_queue_drops_and_counts_without_blocking(queues):
    channel = BlockingChannel()
    alerts = AlertQueue([channel], maxsize=2)
    queues.append(alerts.start())
    try:
        assert returns_without_blocking(alerts.notify, Alert(kind="info", title="in flight"))
        assert channel.entered.wait(5)  # the worker holds the first alert; the queue is empty
        assert alerts.notify(Alert(kind="info", title="queued 1"))
        assert alerts.notify(Alert(kind="info", title="queued 2"))
        assert returns_without_blocking(alerts.notify, Alert(kind="info", title="dropped")) is False
        assert COUNTERS.get("alerts_dropped_total", reason="queue_full", channel="blocking") == 1
    finally:
        channel.release.set()
    assert alerts.close(timeout=5.0) is True
    assert [a.title for a in channel.sent] == ["in flight", "queued 1", "queued 2"]
    assert COUNTERS.get("alerts_sent_total", channel="blocking") == 3


def test_close_returns_with_a_send_in_flight_and_drops_the_rest(queues):
    channel = BlockingChannel()
    alerts = AlertQueue([channel], maxsize=10)
    queues.append(alerts.start())
    try:
        assert returns_without_blocking(alerts.notify, Alert(kind="info", title="in flight"))
        assert channel.entered.wait(5)
        assert alerts.notify(Alert(kind="info", title="left over"))
        assert returns_without_blocking(alerts.close, 0.2) is False
        assert COUNTERS.get("alerts_dropped_total", reason="shutdown", channel="blocking") == 1
        assert alerts.notify(Alert(kind="info", title="too late")) is False
        assert COUNTERS.get("alerts_dropped_total", reason="closed") == 1
    finally:
        channel.release.set()
    assert wait_until(lambda: COUNTERS.get("alerts_sent_total", channel="blocking") == 1)
    assert [a.title for a in channel.sent] == ["in flight"]  # the rest was dropped
