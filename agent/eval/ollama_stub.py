"""A local stand-in for the Ollama HTTP API, on loopback, on the standard library (and the agent's model-name rule).

``make bench`` measures scheduling and host scaling against it; the tests check the agent against it.

It serves the two endpoints the agent uses, with the shapes a real Ollama answers:

- ``GET /api/tags``: the configured models, with realistic metadata;
- ``POST /api/show``: a model's details and ``capabilities`` (``vision`` for a model that takes images);
- ``POST /api/chat``: one JSON object when the request says ``"stream": false``, otherwise
  (``"stream": true`` or no key, as langchain-ollama sends by default) NDJSON over a chunked
  response, ending with a ``"done": true`` line that carries the usage counters.

Usage::

    with OllamaStub(models=["mistral:7b"], content={"mistral:7b": '{"score": 0.9}'}) as stub:
        ...  # point the client at stub.url; then assert on stub.requests

Every attribute below may be changed while the stub runs; handlers read them per request.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

from agent.llm.providers import canonical_model

Content = dict[str, str] | Callable[[dict[str, Any]], str]

DEFAULT_MODELS = ("mistral:7b",)
STREAM_PIECE_CHARS = 12  # the stub "generates" this many characters per streamed line


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def tag_entry(name: str, digest: str | None = None) -> dict[str, Any]:
    """One ``/api/tags`` entry shaped like a real Ollama answer (sizes and digest are made up)."""
    size = re.search(r":(\d+(?:\.\d+)?)b\b", name, re.IGNORECASE)
    billions = float(size.group(1)) if size else 1.0
    family = re.split(r"[:.\-\d]", name, maxsplit=1)[0] or "llama"
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-01T10:00:00.000000000-03:00",
        "size": int(billions * 0.6e9),
        "digest": digest or hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": f"{billions:g}B",
            "quantization_level": "Q4_K_M",
        },
    }


def _usage(body: dict[str, Any], pieces: int) -> dict[str, Any]:
    """The counters and durations (nanoseconds) of a finished Ollama generation."""
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    return {
        "total_duration": 412_000_000,
        "load_duration": 21_000_000,
        "prompt_eval_count": max(prompt_words, 1),
        "prompt_eval_duration": 95_000_000,
        "eval_count": max(pieces, 1),
        "eval_duration": 290_000_000,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    allow_reuse_address = True  # a stopped stub can start again on its old port (a host coming back)

    def __init__(self, stub: "OllamaStub"):
        self.stub = stub
        self.open_connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", stub.port), _Handler)

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout) or a stub shutting down is expected; stay quiet."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as Ollama does
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.open_connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # ------------------------------------------------------------ routing

    def do_GET(self) -> None:
        stub = self.server.stub
        stub.calls.append(("GET", self.path))
        if self.path == "/api/tags":
            self._send_json(200, {"models": [tag_entry(m, stub.digests.get(m)) for m in stub.models]})
        else:
            self._send_text(404, "404 page not found")

    def do_POST(self) -> None:
        stub = self.server.stub
        stub.calls.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": "invalid character in request body"})
            return
        if self.path == "/api/show":
            self._show(str(body.get("model", "")))
            return
        if self.path != "/api/chat":
            self._send_text(404, "404 page not found")
            return
        stub.requests.append(body)
        model = str(body.get("model", ""))
        if not self._wait(stub.delay_s + stub.model_delay_s.get(model, 0.0) + stub.load(model)):
            return
        if stub.status is not None:
            self._send_json(stub.status, {"error": stub.error_message})
        elif stub.reject_unknown and canonical_model(model) not in {canonical_model(m) for m in stub.models}:
            self._send_json(404, {"error": f"model '{model}' not found, try pulling it first"})
        else:
            self._chat(body, stub.answer(body), stream=body.get("stream", True))

    # ------------------------------------------------------------ responses

    def _show(self, model: str) -> None:
        stub = self.server.stub
        if canonical_model(model) not in {canonical_model(m) for m in stub.models}:
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        entry = tag_entry(model, stub.digests.get(model))
        self._send_json(200, {"modelfile": f"FROM {model}", "parameters": "", "template": "{{ .Prompt }}",
                              "details": entry["details"], "model_info": {},
                              "capabilities": stub.capabilities.get(model, ["completion"])})

    def _wait(self, seconds: float) -> bool:
        """Sleep like a busy model; False (and drop the connection) if the stub stops meanwhile."""
        if seconds and self.server.stub.stopping.wait(seconds):
            self.close_connection = True
            return False
        return True

    @staticmethod
    def _chat_message(body: dict[str, Any], content: str, *, done: bool, pieces: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": body.get("model", ""),
            "created_at": _now(),
            "message": {"role": "assistant", "content": content},
            "done": done,
        }
        if done:
            out.update(done_reason="stop", **_usage(body, pieces))
        return out

    def _chat(self, body: dict[str, Any], content: str, *, stream: bool) -> None:
        """Generate ``content`` piece by piece (``piece_delay_s`` each); stream the pieces or send it whole."""
        pieces = [content[i:i + STREAM_PIECE_CHARS] for i in range(0, len(content), STREAM_PIECE_CHARS)]
        stub = self.server.stub
        delay = stub.piece_delay_s
        if not stream:
            if not self._wait(delay * len(pieces)):
                return
            if stub.raw_reply is not None:
                self._send_bytes(200, stub.raw_reply, "application/json; charset=utf-8")
            elif stub.trickle_s:
                self._trickle(json.dumps(self._chat_message(body, content, done=True, pieces=len(pieces))).encode())
            else:
                self._send_json(200, self._chat_message(body, content, done=True, pieces=len(pieces)))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        lines = [self._chat_message(body, piece, done=False) for piece in pieces]
        for line in [*lines, self._chat_message(body, "", done=True, pieces=len(pieces))]:
            if not self._wait(delay):
                return
            data = json.dumps(line).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _trickle(self, data: bytes) -> None:
        """A whole (non-streamed) reply sent slowly: its headers at once, then its body in
        ``trickle_pieces`` chunks, one every ``trickle_s`` (a stalled proxy, a host swapping to disk)."""
        stub = self.server.stub
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        size = -(-len(data) // stub.trickle_pieces)
        for start in range(0, len(data), size):
            if not self._wait(stub.trickle_s):
                return
            self.wfile.write(data[start:start + size])
            self.wfile.flush()
            stub.trickled += 1

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send_text(self, status: int, text: str) -> None:
        self._send_bytes(status, text.encode(), "text/plain")


class OllamaStub:
    """A running fake Ollama on ``127.0.0.1`` (ephemeral port). Use it as a context manager.

    - ``models``: names served by ``/api/tags`` (exactly as given) and accepted by ``/api/chat``;
    - ``content``: the assistant's answer, a dict model name -> text, or a callable taking the
      request body; a model missing from the dict answers an empty string;
    - ``reject_unknown``: answer 404 ``model '<x>' not found`` for a model not in ``models``;
    - ``delay_s``: seconds to wait before answering a chat (to provoke client timeouts);
    - ``model_delay_s``: extra seconds per model (a slow model among fast ones);
    - ``capabilities``: what ``/api/show`` lists per model (default ``["completion"]``; add ``"vision"``);
    - ``piece_delay_s``: seconds the model takes per piece of its answer: streamed, one line at
      that pace (a slow model that keeps talking); not streamed, the whole wait before the reply;
    - ``trickle_s``: a non-streamed reply is sent in ``trickle_pieces`` chunks, one every ``trickle_s``
      seconds (``trickled`` counts the chunks sent): each read is quick, the whole reply is not;
    - ``raw_reply``: bytes sent as the body of every non-streamed chat reply instead of Ollama's JSON;
    - ``status``: when set (e.g. 500), every chat answers that HTTP status with ``error_message``;
    - ``max_loaded``/``load_delay_s``: simulate Ollama's model memory: a model not among the last
      ``max_loaded`` used takes ``load_delay_s`` to load first (``loads`` counts them);
    - ``requests``: every ``/api/chat`` request body received, in order; ``calls``: (method, path).
    """

    def __init__(self, models: Iterable[str] = DEFAULT_MODELS, content: Content | None = None, *,
                 reject_unknown: bool = True, delay_s: float = 0.0, piece_delay_s: float = 0.0,
                 status: int | None = None,
                 error_message: str = "llama runner process has terminated: exit status 2",
                 max_loaded: int | None = None, load_delay_s: float = 0.0, trickle_s: float = 0.0,
                 trickle_pieces: int = 20, raw_reply: bytes | None = None):
        self.models = list(models)
        self.digests: dict[str, str] = {}  # model -> digest /api/tags reports (a re-pull changes it)
        self.content: Content = {} if content is None else content
        self.reject_unknown = reject_unknown
        self.delay_s = delay_s
        self.model_delay_s: dict[str, float] = {}
        self.capabilities: dict[str, list[str]] = {}
        self.piece_delay_s = piece_delay_s
        self.trickle_s, self.trickle_pieces, self.trickled = trickle_s, trickle_pieces, 0
        self.raw_reply = raw_reply
        self.status = status
        self.error_message = error_message
        self.port = 0  # 0 until the first start picks a free one
        self.max_loaded, self.load_delay_s = max_loaded, load_delay_s
        self.loaded: list[str] = []  # models in memory, least recently used first
        self.loads = 0
        self._load_lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The stub's address; it stays the same across stop() and start()."""
        if not self.port:
            raise RuntimeError("the Ollama stub was never started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_models(self) -> list[str]:
        """The ``model`` of each chat request, in the order received."""
        return [body.get("model") for body in self.requests]

    def load(self, model: str) -> float:
        """Seconds this request waits to load ``model``, as Ollama does when it is not in memory.

        At most ``max_loaded`` models stay loaded (Ollama's default on a CPU host is 3); loading
        another evicts the least recently used one. Counted in ``loads``."""
        if self.max_loaded is None:
            return 0.0
        with self._load_lock:
            name = canonical_model(model)
            if name in self.loaded:
                self.loaded.remove(name)
                self.loaded.append(name)
                return 0.0
            self.loaded.append(name)
            del self.loaded[:-self.max_loaded]
            self.loads += 1
            return self.load_delay_s

    def answer(self, body: dict[str, Any]) -> str:
        if callable(self.content):
            return self.content(body)
        return self.content.get(str(body.get("model", "")), "")

    def start(self) -> "OllamaStub":
        self.stopping.clear()
        self._server = _Server(self)
        self.port = self._server.server_address[1]  # kept: start() after stop() reuses it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ollama-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        with server.lock:
            connections = list(server.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "OllamaStub":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
