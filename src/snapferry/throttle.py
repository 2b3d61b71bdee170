"""A bandwidth limit shared by all workers of one run (--max-bytes-per-second)."""

from __future__ import annotations

import threading
import time


class Throttle:
    """Token bucket; `take(n)` sleeps as long as needed to keep the average rate."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        if self.rate <= 0 or n <= 0:
            return
        with self._lock:
            now = time.monotonic()
            # Allow at most ~1 s of burst after idleness, so a pause is not "saved up".
            start = max(self._next, now - 1.0)
            self._next = start + n / self.rate
            delay = self._next - now
        if delay > 0:
            time.sleep(delay)


class NoThrottle(Throttle):
    def __init__(self) -> None:
        super().__init__(0)
