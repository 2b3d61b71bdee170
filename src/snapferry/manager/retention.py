"""Retention: which dated backups to delete after a run (pure, no I/O).

Per type, the newest `keep` backups are kept (names of one type sort in time
order); -1 keeps all, 0 none. A locked backup is never deleted, and `latest`
is never a candidate. Locked backups count among the newest `keep` when they
are among them, so locking never makes retention delete anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .layout import DATED_TYPES, BackupName, BackupType

KEEP_ALL = -1


def to_delete(
    existing: Iterable[BackupName], keep: Mapping[BackupType, int], locked: Iterable[BackupName] = (),
) -> list[BackupName]:
    """The backups to delete, oldest first within each type."""
    pinned = set(locked)
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
        doomed.extend(b for b in reversed(newest_first[n:]) if b not in pinned)
    return doomed
