"""OLLAMA_TIMEOUT as a deadline on the whole HTTP call, not on each read.

httpx's timeouts bound each network operation: a server that sends a few bytes every second
(a stalled proxy, a host swapping to disk) resets the read timeout with every chunk and can hold a
layer for minutes. ``DeadlineTransport`` starts a timer with each request; when it fires, the
connection's socket is shut down, which ends any read in progress at once, and the request fails
with ``httpx.ReadTimeout``, the error a plain timeout gives (a discard, never retried).

Connections are not kept alive between calls, so every request owns the socket the timer may shut.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Iterator

import httpx


class DeadlineTransport(httpx.HTTPTransport):
    def __init__(self, deadline_s: float, **kwargs: Any):
        super().__init__(limits=httpx.Limits(max_keepalive_connections=0), **kwargs)
        self.deadline_s = deadline_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(self.deadline_s, request)
        request.extensions = {**request.extensions, "trace": call.trace}
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            call.finish()
            raise call.timed_out() if call.expired.is_set() else exc
        response.stream = _DeadlineStream(response.stream, call)
        return response


class _Call:
    """One request's timer and the socket it shuts when the deadline passes."""

    def __init__(self, deadline_s: float, request: httpx.Request):
        self.deadline_s, self.request = deadline_s, request
        self.expired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                self._sockets.append(sock)
                if self.expired.is_set():
                    _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired.set()
            for sock in self._sockets:
                _shut(sock)

    def finish(self) -> None:
        self._timer.cancel()

    def timed_out(self) -> httpx.ReadTimeout:
        return httpx.ReadTimeout(f"no complete reply within {self.deadline_s:g}s (OLLAMA_TIMEOUT)",
                                 request=self.request)


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


class _DeadlineStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, call: _Call):
        self.inner, self.call = inner, call

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                if self.call.expired.is_set():
                    raise self.call.timed_out()
                yield chunk
        except httpx.TransportError as exc:
            if self.call.expired.is_set() and not isinstance(exc, httpx.ReadTimeout):
                raise self.call.timed_out() from exc
            raise
        if self.call.expired.is_set():
            raise self.call.timed_out()

    def close(self) -> None:
        self.call.finish()
        self.inner.close()
