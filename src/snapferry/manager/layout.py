"""vmbackupmanager's layout under --dst: `latest/` and the dated backups.

Names are checked against these exact forms before they touch a path or a remote
prefix: they come from users (CLI, API) and from remote listings.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from .. import names
from ..errors import UsageError
from ..remotes import split_url


class BackupType(enum.Enum):
    LATEST = names.LATEST
    HOURLY = names.HOURLY
    DAILY = names.DAILY
    WEEKLY = names.WEEKLY
    MONTHLY = names.MONTHLY


DATED_TYPES = (BackupType.HOURLY, BackupType.DAILY, BackupType.WEEKLY, BackupType.MONTHLY)

# Fixed-width forms: within one type, name order is time order (retention relies on it).
# re.ASCII: \d would also match other scripts' digits (int() reads them), naming other prefixes.
_PERIOD_RE = {
    BackupType.HOURLY: re.compile(r"(\d{4})-(\d{2})-(\d{2}):(\d{2})", re.ASCII),
    BackupType.DAILY: re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII),
    BackupType.WEEKLY: re.compile(r"(\d{4})-(\d{2})", re.ASCII),
    BackupType.MONTHLY: re.compile(r"(\d{4})-(\d{2})", re.ASCII),
}
_FORMS = "latest, hourly/YYYY-MM-DD:HH, daily/YYYY-MM-DD, weekly/YYYY-WW or monthly/YYYY-MM"


@dataclass(frozen=True, slots=True, order=True)
class BackupName:
    """A validated backup name: its type and its period ('' for latest)."""

    type: BackupType
    period: str

    def __str__(self) -> str:
        return self.type.value if self.type is BackupType.LATEST else f"{self.type.value}/{self.period}"

    def period_start(self) -> datetime:
        """The UTC start of the period the name stands for (a fallback creation time)."""
        m = _PERIOD_RE[self.type].fullmatch(self.period) if self.type is not BackupType.LATEST else None
        if m is None:
            return datetime.fromtimestamp(0, UTC)
        nums = [int(g) for g in m.groups()]
        if self.type is BackupType.HOURLY:
            return datetime(nums[0], nums[1], nums[2], nums[3], tzinfo=UTC)
        if self.type is BackupType.DAILY:
            return datetime(nums[0], nums[1], nums[2], tzinfo=UTC)
        if self.type is BackupType.WEEKLY:
            d = date.fromisocalendar(nums[0], nums[1], 1)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        return datetime(nums[0], nums[1], 1, tzinfo=UTC)


def period_of(kind: BackupType, when: datetime) -> str:
    """The period `when` (already in the schedule's time zone) falls in."""
    if kind is BackupType.HOURLY:
        return when.strftime("%Y-%m-%d:%H")
    if kind is BackupType.DAILY:
        return when.strftime("%Y-%m-%d")
    if kind is BackupType.WEEKLY:
        iso = when.isocalendar()  # ISO year: 2027-01-01 is in week 2026-53
        return f"{iso.year:04d}-{iso.week:02d}"
    if kind is BackupType.MONTHLY:
        return when.strftime("%Y-%m")
    return ""


def backup_name(kind: BackupType, when: datetime) -> str:
    """`latest`, `hourly/2026-11-27:13`, `daily/2026-11-27`, `weekly/2026-48`, `monthly/2026-11`."""
    return str(BackupName(kind, period_of(kind, when)))


def parse_backup_name(name: str) -> BackupName:
    """The BackupName of one of the five forms; UsageError for anything else."""
    if name == names.LATEST:
        return BackupName(BackupType.LATEST, "")
    kind_s, sep, period = name.partition("/")
    kind = next((t for t in DATED_TYPES if t.value == kind_s), None)
    m = _PERIOD_RE[kind].fullmatch(period) if kind is not None and sep else None
    if kind is None or m is None or not _valid_period(kind, [int(g) for g in m.groups()]):
        raise UsageError(f"{name!r} is not a backup name; expect {_FORMS}")
    return BackupName(kind, period)


def _valid_period(kind: BackupType, nums: list[int]) -> bool:
    try:
        if kind is BackupType.WEEKLY:
            date.fromisocalendar(nums[0], nums[1], 1)
        elif kind is BackupType.MONTHLY:
            date(nums[0], nums[1], 1)
        else:
            date(nums[0], nums[1], nums[2])
    except ValueError:
        return False
    return kind is not BackupType.HOURLY or nums[3] < 24


def enclosing_backup(path: str) -> str | None:
    """The backup of a layout that `path` (a --dst's path or prefix) lies in, e.g.
    `vm/latest` of `vm/latest/node-1`, or None. A --dst there would have its objects
    deleted by the runs (stale parts of latest/) and the retention of the manager that
    owns that layout, and copied into its dated backups."""
    segs = [s for s in path.split("/") if s]
    for i, seg in enumerate(segs):
        if seg == BackupType.LATEST.value:
            return "/".join(segs[: i + 1])
        if i + 1 < len(segs):
            try:
                parse_backup_name(f"{seg}/{segs[i + 1]}")
            except UsageError:
                continue
            return "/".join(segs[: i + 2])
    return None


def refuse_dst_in_a_backup(dst: str, storage_data_path: str) -> None:
    """A --dst inside another layout's backup (`s3://b/vm/latest/node-1`) would lose its objects to
    that layout's manager, and a storage data path inside one of this --dst's dated backups would
    be deleted by its copies and retention: both are refused at start, before anything is written."""
    scheme, _, path = split_url(dst)
    if scheme == "fs":
        data = os.path.realpath(storage_data_path)
        root = os.path.realpath(path)
        if data.startswith(root.rstrip("/") + "/"):
            held = enclosing_backup(os.path.relpath(data, root))
            if held is not None:
                raise UsageError(
                    f"the storage data path {storage_data_path} is inside the backup {held} of --dst {dst}, "
                    "whose copies and retention would delete it; move the data or pick another --dst"
                )
    inside = enclosing_backup(path)
    if inside is not None:
        raise UsageError(
            f"--dst {dst} lies inside the backup {inside!r} of a backup layout, whose manager would delete "
            "or copy its objects; pick a --dst outside any latest/, hourly/, daily/, weekly/ or monthly/ backup"
        )
