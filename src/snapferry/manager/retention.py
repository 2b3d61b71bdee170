"""Retention: which dated backups to delete after a run (pure, no I/O).

Per type, the newest `keep` complete backups are kept (names of one type sort in
time order), and everything older than the last of them is deleted; -1 keeps all,
0 none. Incomplete backups (a copy that failed or was killed) do not count: one
newer than the kept complete ones stays (the next run of its period redoes it),
so it can never push the last complete backup of a type out. A locked backup is
never deleted, and `latest` is never a candidate. Locked backups count among the
newest `keep` when they are among them, so locking never makes retention delete
anything else.

Two rules guard against a clock that was wrong for a while: with keep >= 1, a
backup the current run made (or left as it was, frozen by a lock or a restore
mark) is never deleted; a name dated after the current period of its
type (`weekly/2030-01` made by a run whose clock was in 2030) is neither deleted
nor counted as newer, so it cannot push today's backups out. The caller reports
those names (`future`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .layout import DATED_TYPES, BackupName, BackupType

KEEP_ALL = -1


@dataclass(frozen=True, slots=True)
class Plan:
    delete: list[BackupName] = field(default_factory=list)  # oldest first within each type
    future: list[BackupName] = field(default_factory=list)  # dated after now: kept, not counted


def to_delete(
    existing: Iterable[BackupName], keep: Mapping[BackupType, int], locked: Iterable[BackupName] = (),
    incomplete: Iterable[BackupName] = (),
) -> list[BackupName]:
    """The backups to delete, oldest first within each type (no clock: nothing is in the future)."""
    return plan(existing, keep, locked, incomplete).delete


def plan(
    existing: Iterable[BackupName], keep: Mapping[BackupType, int], locked: Iterable[BackupName] = (),
    incomplete: Iterable[BackupName] = (), current: Mapping[BackupType, str] | None = None,
    made: Iterable[BackupName] = (),
) -> Plan:
    """`current`: the period each type's name has now (in the schedule's zone); `made`: the
    names the current run wrote or kept. Both protect as the module says."""
    pinned = set(locked)
    partial = set(incomplete)
    ours = set(made)
    now = current or {}
    by_type: dict[BackupType, list[BackupName]] = {}
    future: list[BackupName] = []
    for name in sorted(set(existing), key=str):
        if name.type is BackupType.LATEST:
            continue
        if name.type in now and name.period > now[name.type]:  # fixed-width periods: text order is time order
            future.append(name)
            continue
        by_type.setdefault(name.type, []).append(name)
    doomed: list[BackupName] = []
    for kind in DATED_TYPES:
        n = keep.get(kind, KEEP_ALL)
        if n < 0:
            continue
        newest_first = sorted(by_type.get(kind, []), key=lambda b: b.period, reverse=True)
        kept_complete = 0
        cut = len(newest_first)
        for i, b in enumerate(newest_first):
            if kept_complete >= n:
                cut = i
                break
            kept_complete += b not in partial
        # keep 0 asks for none of the type: then even this run's backup goes, as vmbackupmanager does
        spared = pinned | ours if n > 0 else pinned
        doomed.extend(b for b in reversed(newest_first[cut:]) if b not in spared)
    return Plan(doomed, future)
