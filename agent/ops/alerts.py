"""Alerts with the decision's data, sent through apprise (agent/ops/alert_channels.py) from queues.

Trading must never wait on, or fail because of, an alert endpoint: ``notify()`` only enqueues
(a full queue drops the alert and counts it), and each channel has its own bounded queue and
worker thread, so a hanging Telegram delays neither Slack nor e-mail. Every send has a timeout;
failures are counted (``alerts_failed_total``) and logged with the channel secrets masked.
Every message carries ``[paper]``: this agent only paper-trades.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from loguru import logger
from pydantic import BaseModel, ConfigDict, SecretStr

from agent.config import Settings
from agent.errors import AlertSendError
from agent.ops.alert_channels import channels_from_settings
from agent.ops.logs import redact
from agent.ops.metrics import COUNTERS

PAPER_MARK = "[paper]"

AlertKind = Literal["buy", "exit", "halt", "resume", "stall", "info"]


class Alert(BaseModel):
    """One alert. ``subject`` and ``message`` add the paper mark, so no channel can leave it out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: AlertKind
    title: str
    text: str = ""

    @property
    def subject(self) -> str:
        return f"{PAPER_MARK} {self.title}"

    @property
    def message(self) -> str:
        return f"{self.subject}\n{self.text}" if self.text else self.subject


def _num(value: Any, fmt: str = ".2f") -> str:
    return "?" if value is None else format(float(value), fmt)


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def trade_alert(trade: Mapping[str, Any]) -> Alert:
    """The alert for a broker trade: ``open`` is a BUY, ``close_<why>`` (stop, take_profit) an exit."""
    action = str(trade.get("action") or "")
    ticker = trade.get("ticker") or "?"
    fill = f"{trade.get('qty', '?')} {ticker} @ {_num(trade.get('price'))} (fees {_num(trade.get('fees'))})"
    ref = f"decision {trade['decision_id']}" if trade.get("decision_id") else ""
    if action == "open":
        return Alert(kind="buy", title=f"BUY {ticker}", text=_lines(f"Bought {fill}", ref))
    if action.startswith("close"):
        why = action.removeprefix("close").lstrip("_").replace("_", "-") or "exit"
        return Alert(kind="exit", title=f"EXIT {ticker} ({why})",
                     text=_lines(f"Sold {fill}", f"Profit {_num(trade.get('profit'), '+.2f')}", ref))
    return Alert(kind="info", title=f"TRADE {action or '?'} {ticker}", text=_lines(fill, ref))


def dashboard_link(settings: Settings, decision_id: str) -> str | None:
    """The decision's page on the dashboard, or None when the dashboard is off."""
    d = settings.dashboard
    if not d.enabled:
        return None
    host = socket.gethostname() if d.bind in ("0.0.0.0", "::") else d.bind
    return f"http://{host}:{d.port}/decision/{decision_id}"


def decision_alert(record: Mapping[str, Any], link: str | None = None) -> Alert:
    """A BUY decision that became an order: price, size, stop, target and every layer's score."""
    ticker, pos = record.get("ticker") or "?", record.get("position") or {}
    price, shares = pos.get("entry"), pos.get("shares")
    value = f" (R$ {float(price) * int(shares):,.2f})" if price is not None and shares is not None else ""
    scores = ", ".join(f"{r.get('layer')} {_num(r.get('score'))}" for r in record.get("layers") or [])
    return Alert(kind="buy", title=f"BUY {ticker} @ {_num(price)}", text=_lines(
        f"Size: {shares if shares is not None else '?'} shares{value}",
        f"Stop {_num(pos.get('stop'))} | Target {_num(pos.get('take_profit'))}",
        f"Confidence {_num(record.get('confidence'))}; layers: {scores or 'none'}",
        f"Bar {record.get('bar_date') or '?'}; decision {record.get('decision_id') or '?'}",
        link or ""))


def halt_alert(reason: str, state: Mapping[str, Any] | None = None) -> Alert:
    """The kill switch halted trading; ``state`` (equity, drawdown...) is listed so the reader needs no log."""
    details = [f"{key}: {round(v, 4) if isinstance(v, float) else v}" for key, v in (state or {}).items()]
    return Alert(kind="halt", title="Trading HALTED (kill switch)",
                 text=_lines(f"Reason: {reason}", *details, "No new BUY until a person resumes."))


def stall_alert(seconds_since_last_cycle: float, interval_s: float) -> Alert:
    """The loop completed no cycle for several intervals: the process may hang on a data source or a model."""
    return Alert(kind="stall", title="Loop STALLED",
                 text=f"No cycle completed for {seconds_since_last_cycle:.0f} s (interval {interval_s:.0f} s).")


class Channel(Protocol):
    """Where alerts go. ``send`` raises on any failure; ``secrets`` are masked in every logged error."""

    name: str

    @property
    def secrets(self) -> tuple[SecretStr | str | None, ...]: ...

    def send(self, alert: Alert) -> None: ...


def _retryable(exc: Exception) -> bool:
    """A timeout already waited the full timeout_s: retrying it would only hold a hanging channel longer."""
    if isinstance(exc, AlertSendError):
        return exc.retryable
    return not isinstance(exc, TimeoutError)


_WAKE = object()  # put by close(): wakes a worker blocked on an empty queue


class AlertQueue:
    """Fans each alert out to one bounded queue per channel, each drained by its own daemon thread.

    One lane per channel, so a hanging endpoint holds only its own channel (until its timeout),
    never the others and never the caller.
    """

    def __init__(self, channels: Sequence[Channel], maxsize: int = 100, retries: int = 1, backoff_s: float = 1.0):
        self._lanes: list[tuple[Channel, queue.Queue]] = [(c, queue.Queue(maxsize)) for c in channels]
        self._secrets = tuple(secret for c in channels for secret in c.secrets)
        self._retries, self._backoff_s = retries, backoff_s
        self._closing = threading.Event()  # no new alerts; a worker exits once its queue is empty
        self._abandon = threading.Event()  # close() ran out of time: workers drop what is left
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._lanes)

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c, _ in self._lanes]

    def start(self) -> AlertQueue:
        """Start the workers (once). Alerts notified before start wait in the queues."""
        with self._lock:
            if not self._threads and not self._closing.is_set():
                self._threads = [threading.Thread(target=self._run, args=lane, name=f"alerts-{lane[0].name}",
                                                  daemon=True) for lane in self._lanes]
                for thread in self._threads:
                    thread.start()
        return self

    def notify(self, alert: Alert) -> bool:
        """Queue ``alert`` for every channel and return at once, never blocking.

        False when no channel is configured, the queue is closed, or a channel's queue was full
        (that alert is dropped for that channel and counted in ``alerts_dropped_total``).
        """
        if not self._lanes:
            return False
        queued = True
        for channel, lane in self._lanes:
            if self._closing.is_set():
                reason = "closed"
            else:
                try:
                    lane.put_nowait(alert)
                    continue
                except queue.Full:
                    reason = "queue_full"
            queued = False
            COUNTERS.inc("alerts_dropped_total", reason=reason, channel=channel.name)
            logger.warning("alert {} dropped for {}: {}", alert.kind, channel.name, reason.replace("_", " "))
        return queued

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking alerts, deliver what is queued within ``timeout`` seconds, and return.

        Never hangs on a hanging endpoint: past the deadline what is still queued is dropped
        (counted, reason ``shutdown``) and a worker stuck in a send is left to its timeout (it is a
        daemon thread). True when every queued alert was handled in time.
        """
        self._closing.set()
        for _, lane in self._lanes:
            try:
                lane.put_nowait(_WAKE)
            except queue.Full:
                pass  # the worker is busy, not blocked on get(); it sees _closing after this alert
        deadline = time.monotonic() + max(0.0, timeout)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self._abandon.set()
        dropped = sum(self._drop_queued(channel, lane) for channel, lane in self._lanes)
        if stuck or dropped:
            logger.warning("alerts closed: {} alert(s) dropped; still in a send: {}", dropped,
                           ", ".join(stuck) or "none")
        return not stuck and not dropped

    def _drop_queued(self, channel: Channel, lane: queue.Queue) -> int:
        dropped = 0
        while True:
            try:
                item = lane.get_nowait()
            except queue.Empty:
                return dropped
            if item is not _WAKE:
                dropped += 1
                COUNTERS.inc("alerts_dropped_total", reason="shutdown", channel=channel.name)

    def _run(self, channel: Channel, lane: queue.Queue) -> None:
        while not self._abandon.is_set():
            if self._closing.is_set():
                try:
                    item = lane.get_nowait()
                except queue.Empty:
                    return
            else:
                item = lane.get()
            if item is _WAKE:
                continue
            if self._abandon.is_set():  # close() gave up while this worker waited: drop, as close() does
                COUNTERS.inc("alerts_dropped_total", reason="shutdown", channel=channel.name)
                return
            self._deliver(channel, item)

    def _deliver(self, channel: Channel, alert: Alert) -> None:
        """Send with at most ``retries`` retries; a failure is counted and logged, never raised."""
        for attempt in range(1, self._retries + 2):
            try:
                channel.send(alert)
            except Exception as exc:  # noqa: BLE001 - an alert endpoint must never take the worker down
                if attempt <= self._retries and _retryable(exc) and not self._abandon.wait(self._backoff_s):
                    continue
                kind = exc.kind if isinstance(exc, AlertSendError) else type(exc).__name__
                logger.warning("alert {} via {} failed after {} attempt(s) ({}): {}", alert.kind, channel.name,
                               attempt, kind, redact(str(exc), *self._secrets))
                COUNTERS.inc("alerts_failed_total", channel=channel.name, kind=kind)  # last: marks the alert done
                return
            logger.debug("alert {} sent via {}", alert.kind, channel.name)
            COUNTERS.inc("alerts_sent_total", channel=channel.name)
            return


def build_alerts(settings: Settings) -> AlertQueue:
    """The started alert queue for ``settings``. With no channel, ``notify()`` is a no-op returning False."""
    alerts = AlertQueue(channels_from_settings(settings), maxsize=settings.alerts.queue_size).start()
    logger.info("alerts: {}", ", ".join(alerts.channel_names) or "off (no channel configured)")
    return alerts
