"""The loop's watchdog: a thread that raises one alert when no cycle completes in time (the process
is alive but not trading)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from agent.ops.metrics import COUNTERS


class Watchdog:
    """Calls ``on_stall`` once when the loop misses its deadline (alive but not trading)."""

    def __init__(self, on_stall: Callable[[float], None], monotonic: Callable[[], float] = time.monotonic,
                 poll_s: float = 5.0):
        self.on_stall, self.monotonic, self.poll_s = on_stall, monotonic, poll_s
        self._deadline: float | None = None
        self._last_beat = monotonic()
        self._alerted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def expect_within(self, seconds: float) -> None:
        """The next cycle must complete within ``seconds`` from now."""
        self._last_beat = self.monotonic()
        self._deadline = self._last_beat + seconds
        self._alerted = False

    def check(self) -> bool:
        if self._deadline is not None and not self._alerted and self.monotonic() > self._deadline:
            self._alerted = True
            COUNTERS.inc("loop_stalls_total")
            self.on_stall(self.monotonic() - self._last_beat)
            return True
        return False

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
