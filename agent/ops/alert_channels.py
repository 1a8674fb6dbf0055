"""Alert channels through apprise: the guide's variables turned into apprise URLs, one channel per URL.

apprise knows Telegram, Slack, e-mail (with the SMTP host of the common providers), SMS gateways
and many more services; ``APPRISE_URLS`` reaches any of them. apprise reports a failed send only by
returning False and logging why, so each send captures apprise's log records of its own thread to
name the failure (``http_500``, ``timeout``...) for the counters. Those records hold tokens (request
URLs), so they are never passed on: apprise's logger is detached, and what we log is redacted.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from loguru import logger
from pydantic import SecretStr

from agent.config import Settings, comma_list
from agent.errors import AlertSendError
from agent.ops.logs import redact

if TYPE_CHECKING:
    from agent.ops.alerts import Alert

DEFAULT_TELEGRAM_API = "https://api.telegram.org"
DETAIL_MAX_CHARS = 200  # of apprise's reason, kept for the log
_HTTP_ERROR = re.compile(r"error=(\d{3})\b")
_SCHEME_NAMES = {"tgram": "telegram", "slack": "slack", "mailto": "email", "mailtos": "email"}
# Where a service's API base lives on its apprise plugin: moved for a self-hosted server (Telegram's
# TELEGRAM_API_URL) or a loopback stand-in in tests.
_API_BASE = {"telegram": ("notify_url", "{}/bot"), "slack": ("webhook_url", "{}/services")}


# ---------------------------------------------------------------- apprise's log, per sending thread

class _ThreadTap(logging.Handler):
    """Keeps apprise's records for the threads that are sending (each lane sends from its own thread)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._local = threading.local()

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self._local, "lines", None)
        if lines is not None:
            try:
                lines.append(record.getMessage())
            except Exception:  # noqa: BLE001 - a malformed record must not break a send
                pass


_TAP = _ThreadTap()
_TAP_LOCK = threading.Lock()


def _apprise() -> Any:
    """apprise, with its logger detached from the root logger and read only through the tap."""
    import apprise

    with _TAP_LOCK:
        log = logging.getLogger("apprise")
        if _TAP not in log.handlers:
            log.addHandler(_TAP)
            log.setLevel(logging.DEBUG)
            log.propagate = False
    return apprise


def failure_kind(lines: list[str]) -> tuple[str, bool]:
    """(kind, retryable) from apprise's log lines of one failed send: HTTP status, timeout or connection."""
    text = "\n".join(lines)
    status = _HTTP_ERROR.search(text)
    if status:
        code = int(status.group(1))
        return f"http_{code}", code >= 500 or code == 429
    if re.search(r"(?i)timed out|timeout", text):
        return "timeout", False  # the full timeout was already waited: a retry would only hold the lane longer
    if re.search(r"(?i)connection error|socket exception|connection refused", text):
        return "connection", True
    return "not_delivered", False


def _detail(lines: list[str]) -> str:
    """apprise's own reason: its warnings (debug lines carry payloads and URLs)."""
    reasons = [line for line in lines if line.startswith(("Failed", "A connection error", "A Connection error",
                                                           "Connection error", "Socket Exception"))]
    return " | ".join(reasons)[:DETAIL_MAX_CHARS]


# ---------------------------------------------------------------- one channel per apprise URL

def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of an apprise URL that may be credentials (user, password, token path parts, query values)."""
    parts = urlsplit(url)
    pieces = re.split(r"[@:/]", parts.netloc) + parts.path.split("/")
    pieces += [kv.partition("=")[2] for kv in parts.query.split("&")]
    return tuple(dict.fromkeys(p for p in pieces if len(p) >= 4))


def channel_name(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    if scheme in ("http", "https") and "hooks.slack" in url:
        return "slack"
    return _SCHEME_NAMES.get(scheme, scheme or "apprise")


@dataclass
class AppriseChannel:
    """One apprise service. ``send`` raises AlertSendError naming the failure; the URL stays secret."""

    name: str
    url: SecretStr
    timeout_s: float = 10.0
    api_base: str | None = None  # the service's API root, when not its public one (see _API_BASE)
    _plugin: Any = field(default=None, init=False, repr=False)

    @property
    def secrets(self) -> tuple[SecretStr | str | None, ...]:
        return (self.url, *url_secrets(self.url.get_secret_value()))

    def plugin(self) -> Any:
        """apprise's plugin for the URL, built once; AlertSendError ``bad_url`` if apprise does not know it."""
        if self._plugin is None:
            apprise = _apprise()
            asset = apprise.AppriseAsset(app_id="B3 cascade agent", storage_mode="memory")
            plugin = apprise.Apprise.instantiate(self.url.get_secret_value(), asset=asset)
            if plugin is None:
                raise AlertSendError("bad_url", f"apprise does not recognise the {self.name} URL")
            plugin.socket_connect_timeout = plugin.socket_read_timeout = self.timeout_s
            self._plugin = plugin
        if self.api_base and self.name in _API_BASE:
            attr, fmt = _API_BASE[self.name]
            setattr(self._plugin, attr, fmt.format(self.api_base.rstrip("/")))
        return self._plugin

    def send(self, alert: Alert) -> None:
        apprise = _apprise()
        plugin = self.plugin()
        with _TAP.capture() as lines:
            ok = plugin.notify(body=alert.text or alert.subject, title=alert.subject,
                               body_format=apprise.NotifyFormat.TEXT)
        if not ok:
            kind, retryable = failure_kind(lines)
            raise AlertSendError(kind, redact(_detail(lines), *self.secrets), retryable=retryable)


# ---------------------------------------------------------------- the guide's variables as apprise URLs

def _q(value: str) -> str:
    return quote(value, safe="")


def email_url(settings: Settings) -> str | None:
    """EMAIL_SENDER/EMAIL_PASSWORD (or the SMTP_* keys) as an apprise mailto URL; None when e-mail is off.

    Without SMTP_HOST apprise infers the server from the sender's provider (gmail.com, outlook.com,
    yahoo.com...; otherwise the sender's domain itself). With no ALERT_EMAIL_TO the sender gets the alerts.
    """
    a, s = settings.alerts, settings.secrets
    sender = a.email_from or (a.smtp_user if a.smtp_user and "@" in a.smtp_user else None)
    if not (a.smtp_host or sender):
        if a.email_to:
            logger.warning("alerts: ALERT_EMAIL_TO needs EMAIL_SENDER or SMTP_HOST; e-mail alerts are off")
        return None
    recipients = comma_list(a.email_to) if a.email_to else ([sender] if sender else [])
    if not recipients or (not a.smtp_host and "@" not in (sender or "")):
        logger.warning("alerts: e-mail needs EMAIL_SENDER (an address) or SMTP_HOST with ALERT_EMAIL_TO; "
                       "e-mail alerts are off")
        return None
    user = a.smtp_user or sender
    login = _q(user) if user else ""
    if login and s.smtp_password is not None:
        login += ":" + _q(s.smtp_password.get_secret_value())
    query = {"to": ",".join(recipients), **({"from": sender} if sender else {})}
    if a.smtp_host:
        secure = a.smtp_starttls or a.smtp_port == 465
        scheme, host = ("mailtos" if secure else "mailto"), f"{a.smtp_host}:{a.smtp_port}"
        query.update(smtp=a.smtp_host, mode="ssl" if a.smtp_port == 465 else "starttls" if secure else "insecure")
    else:
        scheme, host = "mailtos", (sender or "").rpartition("@")[2]
    params = "&".join(f"{k}={_q(v)}" for k, v in query.items())
    return f"{scheme}://{login + '@' if login else ''}{host}/?{params}"


def alert_urls(settings: Settings) -> list[tuple[str, SecretStr]]:
    """(channel name, apprise URL) for every configured service; a half-configured one is reported, not guessed."""
    a, s = settings.alerts, settings.secrets
    urls: list[tuple[str, str]] = []
    if s.telegram_token is not None and a.telegram_chat_id:
        urls.append(("telegram", f"tgram://{s.telegram_token.get_secret_value()}/{a.telegram_chat_id}"))
    elif s.telegram_token is not None or a.telegram_chat_id:
        logger.warning("alerts: Telegram needs both TELEGRAM_TOKEN and TELEGRAM_CHAT_ID; Telegram alerts are off")
    if a.slack_webhook_url is not None:
        urls.append(("slack", a.slack_webhook_url.get_secret_value()))
    mail = email_url(settings)
    if mail:
        urls.append(("email", mail))
    if s.apprise_urls is not None:
        for url in re.split(r"[\s,]+", s.apprise_urls.get_secret_value()):
            if url:
                urls.append((channel_name(url), url))
    names: dict[str, int] = {}
    out = []
    for name, url in urls:  # two services of one kind get distinct lanes and metric labels
        names[name] = names.get(name, 0) + 1
        out.append((name if names[name] == 1 else f"{name}_{names[name]}", SecretStr(url)))
    return out


def channels_from_settings(settings: Settings) -> list[AppriseChannel]:
    """The channels whose settings are complete and whose URL apprise knows (others are reported, off)."""
    a = settings.alerts
    channels = []
    for name, url in alert_urls(settings):
        api = a.telegram_api_url if name == "telegram" and a.telegram_api_url != DEFAULT_TELEGRAM_API else None
        channel = AppriseChannel(name, url, timeout_s=a.timeout_s, api_base=api)
        try:
            channel.plugin()
        except AlertSendError as exc:
            logger.warning("alerts: {}; {} alerts are off", exc, name)
            continue
        channels.append(channel)
    return channels
