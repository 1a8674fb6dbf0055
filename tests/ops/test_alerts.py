"""Alerts: message formatting, the apprise channels against loopback stubs, and a queue that never blocks trading."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from loguru import logger
from pydantic import SecretStr, ValidationError

from agent.errors import AlertSendError
from agent.ops.alert_channels import (
    AppriseChannel,
    alert_urls,
    channels_from_settings,
    email_url,
    failure_kind,
)
from agent.ops.alerts import (
    Alert,
    AlertQueue,
    build_alerts,
    dashboard_link,
    decision_alert,
    halt_alert,
    stall_alert,
    trade_alert,
)
from agent.ops.metrics import COUNTERS
from tests.conftest import make_settings
from tests.support.alert_stubs import HttpStub, SmtpStub, wait_until

TOKEN = "123456:SECRET-bot-token"
WEBHOOK_PATH = "/services/T000/B000/SECRETHOOK"
WEBHOOK = "https://hooks.slack.com" + WEBHOOK_PATH
OPEN = {"action": "open", "ticker": "PETR4", "qty": 100, "price": 10.01, "fees": 2.33, "profit": None,
        "decision_id": "PETR4-2025-06-30-abc", "mode": "simulation"}
STOP = {**OPEN, "action": "close_stop", "price": 8.80, "fees": 2.1, "profit": -120.5}
BUY_RECORD = {"decision_id": "PETR4-2025-06-30-0123456789ab", "ticker": "PETR4", "bar_date": "2025-06-30",
              "decision": "BUY", "confidence": 0.86,
              "position": {"shares": 300, "entry": 38.12, "stop": 36.5, "take_profit": 41.0, "size_factor": 1.0},
              "layers": [{"layer": "sentiment", "score": 0.82}, {"layer": "technical", "score": 0.71},
                         {"layer": "risk", "score": 0.8}, {"layer": "data_validation", "score": 0.95},
                         {"layer": "final_score", "score": 0.86}]}


def telegram_channel(stub: HttpStub, timeout_s: float = 2.0) -> AppriseChannel:
    return AppriseChannel("telegram", SecretStr(f"tgram://{TOKEN}/42"), timeout_s=timeout_s, api_base=stub.url)


def slack_channel(stub: HttpStub, timeout_s: float = 2.0) -> AppriseChannel:
    """apprise's Slack channel for a real hooks.slack.com webhook, its API root moved to the stub."""
    return AppriseChannel("slack", SecretStr(WEBHOOK), timeout_s=timeout_s, api_base=stub.url)


def sent_text(request: dict) -> str:
    """What a person reads in a Telegram or Slack message apprise posted."""
    body = request["json"]
    if "text" in body:
        return body["text"]
    return "\n".join(f"{a.get('title', '')}\n{a.get('text', '')}" for a in body.get("attachments", []))


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


# --- formatting: a BUY decision carries its data ---------------------------------------------------------------------

def test_decision_alert_carries_price_size_levels_scores_and_link():
    settings = make_settings({("dashboard", "port"): 8050})
    link = dashboard_link(settings, BUY_RECORD["decision_id"])
    assert link == "http://127.0.0.1:8050/decision/PETR4-2025-06-30-0123456789ab"
    alert = decision_alert(BUY_RECORD, link)
    assert alert.kind == "buy" and alert.subject == "[paper] BUY PETR4 @ 38.12"
    for part in ("300 shares (R$ 11,436.00)", "Stop 36.50 | Target 41.00", "Confidence 0.86",
                 "sentiment 0.82", "technical 0.71", "risk 0.80", "data_validation 0.95", "final_score 0.86", link):
        assert part in alert.text
    assert dashboard_link(make_settings({("dashboard", "enabled"): False}), "x") is None


# --- configuration: the guide's variables as apprise URLs ---------------------------------------------------------------

def test_channels_follow_the_settings():
    assert channels_from_settings(make_settings()) == []
    settings = make_settings(
        {("alerts", "telegram_chat_id"): "42", ("alerts", "smtp_host"): "mail.local",
         ("alerts", "email_to"): "a@x.org, b@x.org", ("alerts", "smtp_user"): "bot@x.org"},
        {"TELEGRAM_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": WEBHOOK, "SMTP_PASSWORD": "pw-secret"})
    telegram_ch, slack_ch, email_ch = channels_from_settings(settings)
    assert [c.name for c in (telegram_ch, slack_ch, email_ch)] == ["telegram", "slack", "email"]
    assert type(telegram_ch.plugin()).__name__ == "NotifyTelegram"
    assert type(slack_ch.plugin()).__name__ == "NotifySlack"
    mail = email_ch.plugin()
    assert mail.smtp_host == "mail.local" and mail.port == 587 and mail.user == "bot@x.org"
    assert [t[1] for t in mail.targets] == ["a@x.org", "b@x.org"]
    for channel in (telegram_ch, slack_ch, email_ch):
        assert TOKEN not in repr(channel) and "SECRETHOOK" not in repr(channel) and "pw-secret" not in repr(channel)


@pytest.mark.parametrize(("sender", "host", "port"), [("seu@gmail.com", "smtp.gmail.com", 587),
                                                      ("me@yahoo.com", "smtp.mail.yahoo.com", 465)])
def test_guide_email_variables_infer_the_provider_smtp_host(sender, host, port):
    settings = make_settings(environ={"EMAIL_SENDER": sender, "EMAIL_PASSWORD": "app_password"})
    [channel] = channels_from_settings(settings)
    plugin = channel.plugin()
    assert (plugin.smtp_host, plugin.port, plugin.secure) == (host, port, True)
    assert [t[1] for t in plugin.targets] == [sender]  # no ALERT_EMAIL_TO: the sender gets the alerts
    assert plugin.password == "app_password"


def test_smtp_host_overrides_the_inferred_one():
    settings = make_settings(environ={"EMAIL_SENDER": "me@gmail.com", "EMAIL_PASSWORD": "pw", "SMTP_HOST": "relay.lan",
                                      "SMTP_PORT": "2525", "ALERT_EMAIL_TO": "ops@x.org"})
    plugin = channels_from_settings(settings)[0].plugin()
    assert (plugin.smtp_host, plugin.port) == ("relay.lan", 2525)
    assert [t[1] for t in plugin.targets] == ["ops@x.org"]


def test_guide_slack_webhook_and_apprise_urls(log_text):
    settings = make_settings(environ={"SLACK_WEBHOOK": WEBHOOK, "APPRISE_URLS": "ntfy://alerts-topic, json://127.0.0.1:9/x"})
    names = [name for name, _ in alert_urls(settings)]
    assert names == ["slack", "ntfy", "json"]
    assert [c.name for c in channels_from_settings(settings)] == names
    bad = make_settings(environ={"APPRISE_URLS": "nosuchservice://secret-value-123"})
    assert channels_from_settings(bad) == []
    assert "apprise does not recognise the nosuchservice URL" in log_text.getvalue()
    assert "secret-value-123" not in log_text.getvalue()


def test_half_configured_channel_is_off_and_reported(log_text):
    assert channels_from_settings(make_settings(environ={"TELEGRAM_TOKEN": TOKEN})) == []
    assert "TELEGRAM_CHAT_ID" in log_text.getvalue()
    assert email_url(make_settings(environ={"ALERT_EMAIL_TO": "ops@x.org"})) is None
    assert "EMAIL_SENDER" in log_text.getvalue()


def test_no_channels_means_disabled_and_silent(log_text):
    alerts = build_alerts(make_settings())
    before = log_text.getvalue()
    assert not alerts.enabled
    assert alerts.notify(trade_alert(OPEN)) is False
    assert log_text.getvalue() == before  # nothing logged per alert
    assert COUNTERS.snapshot() == []
    assert alerts.close(timeout=1.0) is True


@pytest.mark.parametrize(("lines", "kind", "retryable"), [
    (["Failed to send to Slack: Internal server error., error=500."], "http_500", True),
    (["Failed to send Telegram notification to 42: Too Many Requests, error=429."], "http_429", True),
    (["Failed to send Telegram notification to 42: Not Found, error=404."], "http_404", False),
    (["A connection error occurred sending Telegram:42 notification.", "Socket Exception: Read timed out."],
     "timeout", False),
    (["A Connection error occurred sending Email.", "Socket Exception: [Errno 111] Connection refused"],
     "connection", True),
    ([], "not_delivered", False)])
def test_failure_kind_from_apprise_log(lines, kind, retryable):
    assert failure_kind(lines) == (kind, retryable)


# --- channels against loopback stubs ----------------------------------------------------------------------------------

def test_all_three_channels_deliver(queues):
    with HttpStub() as tg, HttpStub(reply="ok") as sl, SmtpStub() as smtp:
        settings = make_settings(
            {("alerts", "telegram_chat_id"): "42", ("alerts", "telegram_api_url"): tg.url,
             ("alerts", "smtp_host"): "127.0.0.1", ("alerts", "smtp_port"): smtp.port,
             ("alerts", "smtp_starttls"): False, ("alerts", "email_to"): "ops@example.org",
             ("alerts", "email_from"): "agent@example.org", ("alerts", "timeout_s"): 2.0},
            {"TELEGRAM_TOKEN": TOKEN, "SLACK_WEBHOOK": WEBHOOK})
        channels = channels_from_settings(settings)
        channels[1].api_base = sl.url  # the Slack webhook's host, moved to the stub
        alerts = AlertQueue(channels)
        queues.append(alerts.start())
        assert alerts.channel_names == ["telegram", "slack", "email"]

        alert = decision_alert(BUY_RECORD, "http://127.0.0.1:8050/decision/x")
        assert alerts.notify(alert) is True
        assert alerts.close(timeout=5.0) is True

        [tg_req] = tg.requests
        assert tg_req["path"] == f"/bot{TOKEN}/sendMessage" and tg_req["json"]["chat_id"] == 42
        [sl_req] = sl.requests
        assert sl_req["path"] == WEBHOOK_PATH
        for text in (sent_text(tg_req), sent_text(sl_req)):
            assert "[paper] BUY PETR4 @ 38.12" in text and "Stop 36.50 | Target 41.00" in text
            assert "final_score 0.86" in text and "http://127.0.0.1:8050/decision/x" in text
        [mail] = smtp.messages
        assert mail["to"] == ["ops@example.org"] and mail["from"] == "agent@example.org"
        assert mail["message"]["Subject"] == "[paper] BUY PETR4 @ 38.12"
        assert "300 shares" in mail["message"].get_body(("plain",)).get_content()
        for channel in ("telegram", "slack", "email"):
            assert COUNTERS.get("alerts_sent_total", channel=channel) == 1
        assert COUNTERS.get("alerts_failed_total") == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_with_the_guide_password():
    with SmtpStub(user="bot@x.org", password="pw-secret") as smtp:
        settings = make_settings({("alerts", "smtp_port"): smtp.port, ("alerts", "smtp_starttls"): False},
                                 {"SMTP_HOST": "127.0.0.1", "EMAIL_SENDER": "bot@x.org", "EMAIL_PASSWORD": "pw-secret"})
        [channel] = channels_from_settings(settings)
        channel.send(halt_alert("drawdown"))
        assert smtp.logins == [("bot@x.org", "pw-secret")]
        assert smtp.message()["Subject"] == "[paper] Trading HALTED (kill switch)"
        assert smtp.messages[0]["to"] == ["bot@x.org"]


def test_telegram_refusal_is_a_failure_without_the_token():
    with HttpStub(status=400, reply={"ok": False, "description": "Bad Request: chat not found"}) as stub:
        with pytest.raises(AlertSendError) as err:
            telegram_channel(stub).send(stall_alert(900, 300))
        assert err.value.kind == "http_400" and "chat not found" in str(err.value)
        assert TOKEN not in str(err.value)


def test_http_500_is_retried_once_then_counted(queues, log_text):
    with HttpStub(status=500, reply="internal error") as sl:
        alerts = AlertQueue([slack_channel(sl)], backoff_s=0.01)
        queues.append(alerts.start())
        assert alerts.notify(trade_alert(STOP)) is True
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="slack", kind="http_500") == 1)
        assert sl.count() == 2  # the first try and one retry
        assert COUNTERS.get("alerts_sent_total") == 0
        assert "http_500" in log_text.getvalue() and "SECRETHOOK" not in log_text.getvalue()


def test_http_4xx_is_not_retried(queues):
    with HttpStub(status=404, reply={"ok": False, "description": "Not Found"}) as tg:
        alerts = AlertQueue([telegram_channel(tg)], backoff_s=0.01)
        queues.append(alerts.start())
        alerts.notify(stall_alert(900, 300))
        assert alerts.close(timeout=5.0) is True
        assert tg.count() == 1
        assert COUNTERS.get("alerts_failed_total", channel="telegram", kind="http_404") == 1


def test_telegram_token_never_reaches_the_logs(queues, log_text):
    # Telegram's own error text may quote the token, and apprise logs request URLs: the log must mask it.
    with HttpStub(status=401, reply={"ok": False, "description": f"Unauthorized: bot{TOKEN} rejected"}) as tg:
        alerts = build_alerts(telegram_settings(tg.url))
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
        channels = [telegram_channel(telegram, 30.0), slack_channel(slack, 30.0)]
        alerts = AlertQueue(channels)
        queues.append(alerts.start())

        assert returns_without_blocking(alerts.notify, trade_alert(OPEN)) is True
        assert telegram.entered.wait(5)
        assert wait_until(lambda: slack.count() == 1)  # not queued behind the hanging Telegram send
        assert returns_without_blocking(alerts.notify, trade_alert(STOP)) is True
        assert wait_until(lambda: slack.count() == 2)
        assert sent_text(slack.requests[1]).startswith("[paper] EXIT PETR4 (stop)")

        assert returns_without_blocking(alerts.close, 0.2) is False  # bounded, with a send in flight
        assert COUNTERS.get("alerts_dropped_total", reason="shutdown", channel="telegram") == 1  # the EXIT
        assert wait_until(lambda: COUNTERS.get("alerts_sent_total", channel="slack") == 2)
        assert COUNTERS.get("alerts_failed_total") == 0  # Telegram is still hanging
        telegram.release.set()
        # The abandoned worker still finishes its one send, and takes nothing more.
        assert wait_until(lambda: COUNTERS.get("alerts_sent_total", channel="telegram") == 1)
        assert telegram.count() == 1


def test_hanging_endpoint_fails_after_its_timeout_and_later_alerts_go_out(queues):
    with HttpStub(hang=True) as telegram, HttpStub(reply="ok") as slack:
        channels = [telegram_channel(telegram, 0.5), slack_channel(slack, 0.5)]
        alerts = AlertQueue(channels, backoff_s=0.01)
        queues.append(alerts.start())

        assert alerts.notify(trade_alert(OPEN)) is True
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="telegram", kind="timeout") == 1)
        assert telegram.count() == 1  # a timeout is not retried
        assert alerts.notify(trade_alert(STOP)) is True
        assert wait_until(lambda: telegram.count() == 2 and slack.count() == 2)
        assert wait_until(lambda: COUNTERS.get("alerts_failed_total", channel="telegram") == 2)
        assert wait_until(lambda: COUNTERS.get("alerts_sent_total", channel="slack") == 2)


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
