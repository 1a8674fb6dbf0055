"""Several Ollama hosts as one pool: models pinned to the hosts that have them, load spread, failover.

- Each host's pulled models come from ``/api/tags``; a model is only sent to hosts that have it.
- A request goes to the eligible healthy host with the fewest requests in flight, and waits when
  every eligible host already has ``ollama.parallel`` requests running (Ollama's OLLAMA_NUM_PARALLEL).
- A host that fails (connection refused, reset) leaves the pool at once and the request is retried
  on another host. A host out of the pool is probed again after ``retry_after_s`` and rejoins when
  it answers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from loguru import logger

from agent.errors import LLMError, LLMTransientError, ProviderError
from agent.llm.providers import canonical_model, ollama_pulled_models
from agent.ops.metrics import COUNTERS

T = TypeVar("T")
HUNG_AFTER_TIMEOUTS = 2  # consecutive timed-out calls after which a host leaves the pool


@dataclass
class Host:
    url: str
    healthy: bool = False
    models: set[str] = field(default_factory=set)
    in_flight: int = 0
    retry_at: float = 0.0  # monotonic time of the next probe while out of the pool
    served: int = 0
    timeouts: int = 0  # consecutive timed-out calls: a hung host answers /api/tags but not a chat


class HostPool:
    def __init__(self, urls: list[str], parallel: int, probe_timeout_s: float = 2.0, retry_after_s: float = 15.0,
                 wait_s: float = 600.0, monotonic: Callable[[], float] = time.monotonic):
        if not urls:
            raise ProviderError("the Ollama host pool needs at least one host")
        self.hosts = [Host(url.rstrip("/")) for url in dict.fromkeys(urls)]
        self.parallel, self.probe_timeout_s, self.retry_after_s = parallel, probe_timeout_s, retry_after_s
        self.wait_s, self.monotonic = wait_s, monotonic
        self._cond = threading.Condition()
        for host in self.hosts:
            self._probe(host)

    # ------------------------------------------------------------------ health

    def _probe(self, host: Host) -> bool:
        """Ask the host for its models (outside the lock: it is network I/O)."""
        try:
            models = ollama_pulled_models(host.url, self.probe_timeout_s)
        except ProviderError as exc:
            with self._cond:
                self._leave(host, str(exc))
            return False
        with self._cond:
            rejoined = not host.healthy
            host.healthy, host.models = True, set(models)
            self._cond.notify_all()
        if rejoined:
            COUNTERS.inc("ollama_host_joins_total", host=host.url)
            logger.info("ollama pool: {} is in ({} models)", host.url, len(models))
        self._gauges()
        return True

    def _leave(self, host: Host, why: str) -> None:
        if host.healthy:
            COUNTERS.inc("ollama_host_failures_total", host=host.url)
            logger.warning("ollama pool: {} leaves the pool: {}", host.url, why)
        host.healthy = False
        host.retry_at = self.monotonic() + self.retry_after_s
        self._cond.notify_all()

    def recheck(self) -> None:
        """Probe the hosts whose retry time has come (called before each pick, and by the loop each cycle)."""
        now = self.monotonic()
        for host in [h for h in self.hosts if not h.healthy and h.retry_at <= now]:
            self._probe(host)

    def refresh(self) -> None:
        """Probe every host again (model lists change when someone runs ``ollama pull``)."""
        for host in self.hosts:
            self._probe(host)

    def _gauges(self) -> None:
        for host in self.hosts:
            COUNTERS.set_gauge("ollama_host_healthy", 1.0 if host.healthy else 0.0, host=host.url)

    # ------------------------------------------------------------------ picking

    def hosts_with(self, model: str) -> list[str]:
        name = canonical_model(model)
        return [h.url for h in self.hosts if h.healthy and name in h.models]

    def _acquire(self, model: str, tried: set[str]) -> Host:
        name = canonical_model(model)
        deadline = self.monotonic() + self.wait_s
        self.recheck()
        with self._cond:
            while True:
                eligible = [h for h in self.hosts if h.healthy and name in h.models and h.url not in tried]
                if not eligible:
                    raise LLMTransientError("connection", f"no healthy Ollama host has {model} "
                                                          f"({len(tried)} tried, {self.describe()})")
                free = [h for h in eligible if h.in_flight < self.parallel]
                if free:
                    host = min(free, key=lambda h: (h.in_flight, h.served))
                    host.in_flight += 1
                    host.served += 1
                    return host
                if not self._cond.wait(timeout=max(deadline - self.monotonic(), 0.0)) and \
                        self.monotonic() >= deadline:
                    raise LLMTransientError("timeout", f"every host with {model} stayed busy for {self.wait_s:.0f}s")

    def _release(self, host: Host) -> None:
        with self._cond:
            host.in_flight -= 1
            self._cond.notify_all()

    def call(self, model: str, fn: Callable[[str], T]) -> T:
        """``fn(host_url)`` on a host that has ``model``. On a connection failure the host leaves the pool and
        the call moves to the next host; a host whose calls time out again and again leaves too (it answers
        /api/tags but not chats). Raises LLMTransientError when no host is left."""
        tried: set[str] = set()
        while True:
            host = self._acquire(model, tried)
            try:
                result = fn(host.url)
            except LLMTransientError as exc:
                failed: LLMError | None = exc
            except LLMError as exc:
                if exc.kind == "timeout":
                    self._timed_out(host)
                raise
            else:
                host.timeouts = 0
                return result
            finally:
                self._release(host)
            tried.add(host.url)
            with self._cond:
                self._leave(host, str(failed))
            self._gauges()
            COUNTERS.inc("ollama_failovers_total", model=model)
            logger.warning("ollama pool: {} failed on {}; trying another host", model, host.url)

    def _timed_out(self, host: Host) -> None:
        host.timeouts += 1
        if host.timeouts >= HUNG_AFTER_TIMEOUTS:
            with self._cond:
                self._leave(host, f"{host.timeouts} calls in a row timed out")
            host.timeouts = 0
            self._gauges()

    def describe(self) -> str:
        return ", ".join(f"{h.url} {'up' if h.healthy else 'down'}" for h in self.hosts)
