"""When the next run is due, from the schedule flags and an injectable clock.

Hourly at the top of each hour when hourly backups are on, else daily at 00:00,
both in the schedule's time zone; `--backup-interval` replaces both with a fixed
grid counted from the Unix epoch. Every step is UTC arithmetic on instants, so a
DST change neither skips nor repeats a run (the local names of the repeated hour
coincide, and one period holds one backup). The grid depends only on the time,
never on when the process started, so a restart lands on the same slots.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import UsageError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def sleep_until(self, t: datetime, stop_event: threading.Event) -> bool:
        """Wait until `t`; False when stop_event was set first."""
        ...


class SystemClock:
    """The real clock; waits wake early when stopped, and re-check after suspends."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, t: datetime, stop_event: threading.Event) -> bool:
        while True:
            left = (t - self.now()).total_seconds()
            if left <= 0:
                return not stop_event.is_set()
            # Short waits: a suspended host or a clock step is noticed within a minute.
            if stop_event.wait(min(left, 60.0)):
                return False


@dataclass(frozen=True, slots=True)
class Schedule:
    tz: ZoneInfo
    hourly: bool
    interval: timedelta | None = None

    def next_due(self, after: datetime) -> datetime:
        """The first due time strictly after `after` (an aware datetime), in UTC."""
        after = after.astimezone(UTC)
        if self.interval is not None:
            steps = (after - _EPOCH) // self.interval + 1
            return _EPOCH + steps * self.interval
        local = after.astimezone(self.tz)
        if self.hourly:
            # The local hour's start, as an instant, then whole hours on: zones with
            # half-hour offsets stay on their local hour boundaries too.
            start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            while start <= after:
                start += _HOUR
            return start
        day = local.date()
        while True:
            day += timedelta(days=1)
            # A midnight that DST skips resolves to the first instant of that day.
            midnight = datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)
            if midnight > after:
                return midnight


def zone(name: str) -> ZoneInfo:
    if name == "Local":  # Go's time.LoadLocation("Local"), as vmbackupmanager reads the flag
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise UsageError(
            f"--backup-schedule-timezone {name!r} is not a known time zone; use an IANA name like "
            "UTC or Europe/Paris"
        ) from e


def local_zone() -> ZoneInfo:
    """The zone Go's time.Local is: TZ unset -> /etc/localtime; TZ empty -> UTC; TZ a name
    (or `:name`, or an absolute file) -> that zone; anything that cannot be loaded -> UTC."""
    tz = os.environ.get("TZ")
    if tz is None:
        tz = "/etc/localtime"
    tz = tz.removeprefix(":")
    try:
        if tz.startswith("/"):
            with open(tz, "rb") as f:
                return ZoneInfo.from_file(f, key="Local")
        if tz:
            return ZoneInfo(tz)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        pass
    return ZoneInfo("UTC")


def parse_interval(value: str) -> timedelta | None:
    """Seconds (`3600`) or a Go duration (`1h30m`); 0 or '' means the default schedule."""
    text = value.strip()
    if text in ("", "0"):
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        pos, seconds = 0, 0.0
        for m in _GO_DURATION_RE.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _GO_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text):
            raise UsageError(f"--backup-interval {value!r} is not seconds nor a duration like 1h30m; fix it")
    if seconds < 1:
        raise UsageError(f"--backup-interval {value!r} is under a second; use at least 1s, or 0 for the default")
    return timedelta(seconds=seconds)
