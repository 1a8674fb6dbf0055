"""Loopback stand-ins for the alert endpoints: an HTTP API (Telegram, Slack webhook) and an SMTP relay.

Both record what they receive, so tests assert on the requests a real endpoint would have got.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HANG_CAP_S = 30.0  # a hanging request is released at teardown, or after this at the latest


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (for work done by background threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def free_port() -> int:
    """A loopback port free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _HttpHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        stub: HttpStub = self.server.stub  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        stub.record(self.path, json.loads(body) if body else None)
        if stub.hang:
            stub.entered.set()
            stub.release.wait(HANG_CAP_S)
        reply = stub.reply if isinstance(stub.reply, str) else json.dumps(stub.reply)
        data = reply.encode()
        try:
            self.send_response(stub.status)
            self.send_header("Content-Type", "text/plain" if isinstance(stub.reply, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timed out) while this request hung

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


class HttpStub:
    """Answers every POST with ``status`` and ``reply`` (a dict as JSON, a str as text).

    With ``hang`` on, each request is held without an answer until ``release`` is set, as a dead
    endpoint that accepted the connection would; ``entered`` is set when one is being held.
    """

    def __init__(self, status: int = 200, reply: dict[str, Any] | str | None = None, hang: bool = False):
        self.status = status
        self.reply: dict[str, Any] | str = {"ok": True} if reply is None else reply
        self.hang = hang
        self.entered = threading.Event()
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _HttpHandler)
        self._server.stub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append({"path": path, "json": body})

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> HttpStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _SmtpHandler:
    def __init__(self, stub: SmtpStub):
        self.stub = stub

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's naming
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.stub.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message})
        return "250 Message accepted for delivery"


class SmtpStub:
    """An SMTP relay on loopback (no TLS). With ``user``/``password``, AUTH is required and checked."""

    def __init__(self, user: str | None = None, password: str | None = None):
        self.messages: list[dict[str, Any]] = []
        self.logins: list[tuple[str, str]] = []
        self.port = free_port()
        auth = {}
        if user is not None:
            self._credentials = (user, password)
            auth = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port, **auth)

    def _authenticate(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == self._credentials)

    def message(self, index: int = 0) -> EmailMessage:
        return self.messages[index]["message"]

    def __enter__(self) -> SmtpStub:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
