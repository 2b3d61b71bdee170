"""Retention: which dated backups to delete after a run (pure, no I/O).

Per type, the newest `keep` complete backups are kept (names of one type sort in
time order), and everything older than the last of them is deleted; -1 keeps all,
0 none. Incomplete backups (a copy that failed or was killed) do not count: one
newer than the kept complete ones stays (the next run of its period redoes it),
so it can never push the last complete backup of a type out. A locked backup is
never deleted, and `latest` is never a candidate. Locked backups count among the
newest `keep` when they are among them, so locking never makes retention delete
anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .layout import DATED_TYPES, BackupName, BackupType

KEEP_ALL = -1


def to_delete(
    existing: Iterable[BackupName], keep: Mapping[BackupType, int], locked: Iterable[BackupName] = (),
    incomplete: Iterable[BackupName] = (),
) -> list[BackupName]:
    """The backups to delete, oldest first within each type."""
    pinned = set(locked)
    partial = set(incomplete)
    by_type: dict[BackupType, list[BackupName]] = {}
    for name in set(existing):
        if name.type is not BackupType.LATEST:
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
            if kept_complete == n:
                cut = i
                break
            kept_complete += b not in partial
        doomed.extend(b for b in reversed(newest_first[cut:]) if b not in pinned)
    return doomed
