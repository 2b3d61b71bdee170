"""A simulated clock for the manager: days of schedule in seconds, real work.

`SimClock.sleep_until(t)` jumps to `t` at once (after calling `on_advance(t)`,
where a test ingests the samples that arrive before the run at `t`), and stops
the scheduler once `t` passes `end`. Backups, copies and deletions stay real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime


class SimClock:
    def __init__(self, start: datetime, end: datetime | None = None,
                 on_advance: Callable[[datetime], None] | None = None) -> None:
        self._now = start
        self.end = end
        self.on_advance = on_advance
        self.waits: list[datetime] = []

    def now(self) -> datetime:
        return self._now

    def set(self, t: datetime) -> None:
        self._now = t

    def sleep_until(self, t: datetime, stop_event: threading.Event) -> bool:
        self.waits.append(t)
        if stop_event.is_set():
            return False
        if self.end is not None and t >= self.end:
            stop_event.set()
            return False
        if self.on_advance is not None:
            self.on_advance(t)
        self._now = max(self._now, t)
        return True
