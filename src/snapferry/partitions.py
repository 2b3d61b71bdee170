"""Month partitions of a backup: the layout, the partitions with their sizes, and
the selection of `--partitions` / `--since` (pure: a part list in, a decision out).

VictoriaMetrics keeps data in month partitions named `YYYY_MM` under `data/small/`
and `data/big/` (lib/storage/table.go). Since 1.133 each partition also has its
own inverted index under `data/indexdb/YYYY_MM` (lib/storage/partition.go), which
makes a month a self-contained unit. Before, one global `indexdb/` at the root
(lib/storage/storage.go; still opened as the "legacy" index by today's versions)
indexed every month at once: a subset of months cannot be cut out of it, so a
backup holding only it is not restored partially (upstream issue 9147).

The mixed layout (a database made before 1.133 and opened by a later version)
keeps the frozen `indexdb/` beside `data/indexdb/YYYY_MM`: the months before the
upgrade are indexed only in `indexdb/` (their `data/indexdb/M` holds no part), a
month spanning the upgrade in both. Restoring `indexdb/` whole with the selected
months answers every query over them exactly as a full restore does (proven on
1.145.0 by tests/test_partial_restore_vm.py); series and label lookups over an
unselected old month still name its series, with no samples.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .errors import BadBackupError, UsageError
from .parts import Part

# The three places a month lives; anything else in a backup (metadata/, the
# legacy indexdb/, the markers) is not a partition's.
PARTITION_ROOTS = ("data/small", "data/big", "data/indexdb")
LEGACY_INDEX_ROOT = "indexdb"

_NAME_RE = re.compile(r"\A(\d{4})_(\d{2})\Z")
# VictoriaMetrics' duration syntax (lib/promutil): a number and a unit; `ms` is
# accepted for completeness although a month is the smallest unit restored.
_DURATION_RE = re.compile(r"\A(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


class Layout(Enum):
    PER_PARTITION = "per-partition"  # data/indexdb/YYYY_MM only: months split cleanly
    LEGACY = "legacy"  # the global indexdb/ only (before 1.133)
    MIXED = "mixed"  # both: an old database opened by 1.133 or later; indexdb/ is restored whole
    NONE = "none"  # no index at all (an empty database)


@dataclass(frozen=True, slots=True)
class Partition:
    name: str  # YYYY_MM
    data_bytes: int  # data/small + data/big
    index_bytes: int  # data/indexdb/YYYY_MM
    files: int

    @property
    def bytes(self) -> int:
        return self.data_bytes + self.index_bytes


@dataclass(frozen=True, slots=True)
class BackupPartitions:
    layout: Layout
    partitions: tuple[Partition, ...]  # sorted by name
    other_bytes: int  # every file outside the partitions (metadata, legacy indexdb, ...)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.partitions)


def partition_of(path: str) -> str | None:
    """The month a backup path belongs to, or None for a file outside every partition."""
    for root in PARTITION_ROOTS:
        if path.startswith(root + "/"):
            name = path[len(root) + 1:].split("/", 1)[0]
            # data/big/snapshots and the like are not months: they stay with the rest. So does
            # a name VictoriaMetrics never makes (2026_13, 0000_01): it has no month end to compare.
            return name if _is_month_name(name) else None
    return None


def _is_month_name(name: str) -> bool:
    m = _NAME_RE.match(name)
    return m is not None and int(m.group(1)) >= 1 and 1 <= int(m.group(2)) <= 12


def is_legacy_index(path: str) -> bool:
    return path.startswith(LEGACY_INDEX_ROOT + "/")


def describe(parts: Iterable[Part]) -> BackupPartitions:
    """The layout and the partitions of a backup, from its part list."""
    data: dict[str, int] = {}
    index: dict[str, int] = {}
    files: dict[str, set[str]] = {}
    seen: set[str] = set()
    other = 0
    legacy = False
    for p in parts:
        first = p.path not in seen  # a file's size counts once, whatever its part count
        seen.add(p.path)
        month = partition_of(p.path)
        if month is None:
            legacy = legacy or is_legacy_index(p.path)
            other += p.file_size if first else 0
            continue
        files.setdefault(month, set()).add(p.path)
        into = index if p.path.startswith("data/indexdb/") else data
        into[month] = into.get(month, 0) + (p.file_size if first else 0)
        data.setdefault(month, 0)
    per_partition = bool(index)
    if per_partition and legacy:
        layout = Layout.MIXED
    elif per_partition:
        layout = Layout.PER_PARTITION
    elif legacy:
        layout = Layout.LEGACY
    else:
        layout = Layout.NONE
    found = tuple(
        Partition(m, data.get(m, 0), index.get(m, 0), len(files[m])) for m in sorted(files)
    )
    return BackupPartitions(layout, found, other)


def parse_partition_names(text: str) -> tuple[str, ...]:
    """`2026_11,2026_12` as given to --partitions, checked and sorted."""
    names: set[str] = set()
    for raw in text.split(","):
        name = raw.strip()
        if not _is_month_name(name):
            raise UsageError(
                f"--partitions: {name!r} is not a month partition name; use YYYY_MM, e.g. 2026_11"
            )
        names.add(name)
    return tuple(sorted(names))


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """--since as a point in time (UTC): a duration back from `now` (`45d`, `12h`,
    `2w`, `1y`) or a date (`2026-11-01`, or RFC 3339 with a time)."""
    value = text.strip()
    m = _DURATION_RE.match(value)
    if m is not None:
        try:
            return now - dt.timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
        except OverflowError:  # reaches before year 1: every month of any backup is newer
            return dt.datetime.min.replace(tzinfo=dt.UTC)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is neither a duration (e.g. 45d, 12h, 2w) nor a date (e.g. 2026-11-01)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _month_end(name: str) -> dt.datetime:
    year, month = int(name[:4]), int(name[5:])
    if (year, month) == (9999, 12):  # its end is past the last datetime; nothing is later
        return dt.datetime.max.replace(tzinfo=dt.UTC)
    last = calendar.monthrange(year, month)[1]
    return dt.datetime(year, month, last, tzinfo=dt.UTC) + dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Selection:
    """The partitions a partial restore brings back; `None` means all (a full restore)."""

    names: tuple[str, ...]
    partitions: tuple[Partition, ...]
    layout: Layout

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


def select(
    parts: list[Part], *, partitions: str | None, since: str | None, now: dt.datetime, src: str,
    for_restore: bool = True,
) -> Selection | None:
    """The partitions `--partitions` and `--since` name (both: their intersection),
    checked against the backup; None when neither is given. Every refusal is raised
    here, before anything is written."""
    if partitions is None and since is None:
        return None
    wanted = parse_partition_names(partitions) if partitions is not None else None
    start = parse_since(since, now) if since is not None else None
    info = describe(parts)
    if for_restore:  # verify may check the months of any layout
        refuse_layout(info.layout, src)
    have = set(info.names)
    if wanted is not None:
        missing = [n for n in wanted if n not in have]
        if missing:
            listed = ", ".join(info.names) or "none"
            raise UsageError(
                f"the backup {src} has no partition {missing[0]} (it has: {listed}); check --partitions"
            )
    chosen = [p for p in info.partitions if (wanted is None or p.name in wanted)
              and (start is None or _month_end(p.name) > start)]
    if not chosen:
        what = " and ".join(x for x in (
            f"--partitions {partitions}" if partitions is not None else "",
            f"--since {since}" if since is not None else "") if x)
        raise UsageError(
            f"{what} selects no partition of the backup {src} (it has: {', '.join(info.names) or 'none'}); "
            "widen the range"
        )
    return Selection(tuple(p.name for p in chosen), tuple(chosen), info.layout)


def refuse_layout(layout: Layout, src: str) -> None:
    """A partial restore needs an index per partition: refuse the global one."""
    if layout is Layout.LEGACY:
        raise BadBackupError(
            f"the backup {src} holds the legacy global indexdb/ (VictoriaMetrics before 1.133), which indexes "
            "every month at once and cannot be split by partition; restore it whole (without --partitions/--since), "
            "or back up again after VictoriaMetrics 1.133 or later has run on the database (a mixed layout, "
            "restored partially)"
        )


def in_selection(path: str, selection: Selection) -> bool:
    """Whether a backup path is restored (or verified) with the selection."""
    month = partition_of(path)
    return month is None or month in selection.names


def selected_parts(parts: list[Part], selection: Selection) -> list[Part]:
    """The parts a partial restore brings back: the selected months and every file
    outside the partitions (metadata and the rest of the layout the database needs;
    in the mixed layout the legacy indexdb/, which indexes the months before the upgrade)."""
    if selection.layout is Layout.LEGACY:  # select() refused it; a guard for new callers
        raise BadBackupError("a partial restore cannot split the legacy global indexdb/")
    keep = set(selection.names)
    return [p for p in parts if (m := partition_of(p.path)) is None or m in keep]


@dataclass(frozen=True, slots=True)
class PartitionFilter:
    """--partitions and --since of a partial restore, as given (select() decides what they
    select). Here, not in actions/restore.py, so that verify and info name a selection
    without importing the restore pipeline (tests/actions/test_verify_readpath.py)."""

    partitions: str | None = None
    since: str | None = None

    def check(self) -> None:
        """The syntax of --partitions and --since, before any remote is opened."""
        if self.partitions is not None:
            parse_partition_names(self.partitions)
        if self.since is not None:
            parse_since(self.since, dt.datetime.now(dt.UTC))
