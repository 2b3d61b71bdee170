"""A bandwidth limit shared by all workers of one run (--max-bytes-per-second)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside a transfer when another one failed or a signal arrived."""


class Throttle:
    """Token bucket; `take(n)` sleeps as long as needed to keep the average rate (0 = no limit).

    `clock` and `sleep` are time.monotonic and time.sleep unless a test injects its own.
    """

    def __init__(
        self,
        bytes_per_second: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock()

    def take(self, n: int, stop: threading.Event | None = None) -> None:
        """Wait out n bytes' share of the rate; returns early (raising Cancelled) once stop is set."""
        if self.rate <= 0 or n <= 0:
            return
        with self._lock:
            now = self._clock()
            # Allow at most ~1 s of burst after idleness, so a pause is not "saved up".
            start = max(self._next, now - 1.0)
            self._next = start + n / self.rate
            delay = self._next - now
        if delay > 0:
            if stop is None:
                self._sleep(delay)
            elif stop.wait(delay):
                raise Cancelled()
