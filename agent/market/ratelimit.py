"""When a live source says no: the two retryable errors, request spacing and ``Retry-After``.

Errors, one class one action (see ``agent.errors``):

- ``DataSourceUnavailable`` (a ``DataError``): network failure, timeout, HTTP 5xx. Action: retry later
  (the caller's policy, ``RetryingProvider``); until then it is a ``DataError``, so the ticker is skipped
  and ``CachedProvider`` serves cached bars. yfinance's network errors (``OSError`` subclasses from
  curl_cffi) are re-raised as this class, chained, never passed on raw.
- ``RateLimited`` (a ``DataSourceUnavailable``): HTTP 429 / yfinance ``YFRateLimitError``. Action:
  retry after ``retry_after`` seconds (``Retry-After`` honoured); the provider's ``RateLimiter`` is
  pushed back by that delay so its next request waits, and while the wait would exceed
  ``max_wait_s`` it raises ``RateLimited`` at once without calling the API.

Anything else a live provider refuses is a plain ``DataError`` (skip the ticker), or ``BrapiAuthError``
(stop: fix BRAPI_TOKEN).
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from datetime import datetime, timezone
from typing import Callable


class RateLimiter:
    """At least ``min_interval_s`` between the starts of two requests; ``defer`` pushes the next one back.

    ``clock`` (monotonic seconds) and ``sleep`` are injectable so tests run on a fake clock.
    Thread-safe: concurrent callers are spaced one after the other.
    """

    def __init__(self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if min_interval_s < 0 or math.isnan(min_interval_s):
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._sleep = sleep
        self._next = -math.inf
        self._lock = threading.Lock()

    def pending(self) -> float:
        """Seconds the next ``wait`` would sleep."""
        return max(0.0, self._next - self._clock())

    def wait(self) -> float:
        """Block until a request may start, and book the slot. Returns the seconds slept."""
        with self._lock:
            delay = max(0.0, self._next - self._clock())
            if delay > 0:
                self._sleep(delay)
            self._next = max(self._clock(), self._next) + self.min_interval_s
            return delay

    def defer(self, seconds: float) -> None:
        """No request before ``seconds`` from now (e.g. a server's Retry-After)."""
        with self._lock:
            self._next = max(self._next, self._clock() + max(0.0, seconds))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
