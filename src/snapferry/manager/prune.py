"""What a run may not touch, and retention as a run applies it.

A backup that is locked (`backup_locked.ignore`) or named by the restore mark is
frozen: the run skips its copy into it, so the content the init container restores
is the content at the time of the mark, and a lock keeps what was locked. Retention
never deletes a frozen backup, nor (keep >= 1) one this run made; it reports names
dated after now and leaves them; and it cleans up what a retention killed mid-delete
left behind (see Catalog.orphans).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..errors import LockedError, SnapferryError
from ..names import BACKUP_LOCKED_FILE
from . import retention
from .catalog import Catalog
from .layout import DATED_TYPES, BackupName, BackupType, parse_backup_name, period_of
from .marks import RestoreMarks

log = logging.getLogger("snapferry")


@runtime_checkable
class GuardEvents(Protocol):
    """Optional events beside ManagerEvents (the metrics implement them)."""

    def backup_skipped_frozen(self, type: BackupType) -> None: ...

    def future_backups(self, names: list[str]) -> None: ...


class Frozen(Exception):  # a reason to skip, not an error
    """The run's dated backup is locked or marked for restore: the copy is skipped."""


def frozen_reason(catalog: Catalog, marks: RestoreMarks, name: BackupName) -> str | None:
    """Why a run must leave `name` as it is, or None. An unreadable mark raises: then
    nobody can tell which backup it protects, and the copy fails rather than guess."""
    if marks.marked_backup() == name:
        return f"marked for restore in {marks.path}"
    if catalog.open(name).has_file(BACKUP_LOCKED_FILE):
        return "locked"
    return None


def apply_retention(catalog: Catalog, marks: RestoreMarks, keep: dict[BackupType, int], now_local: datetime,
                    made: Iterable[BackupName], events: object) -> tuple[bool, list[str]]:
    """(ok, the names deleted). Orphans are cleaned up whenever retention is on."""
    done: list[str] = []
    try:
        infos = catalog.list()
        names = [parse_backup_name(i.name) for i in infos]
        locked = [parse_backup_name(i.name) for i in infos if i.locked]
        marked = marks.marked_backup()
        if marked is not None:  # deleting it would leave the init container a restore that fails
            locked.append(marked)
        partial = [parse_backup_name(i.name) for i in infos if not i.complete]
        current = {t: period_of(t, now_local) for t in DATED_TYPES}
        p = retention.plan(names, keep, locked, partial, current, made)
        if p.future:
            log.warning("backups dated after now (%s): %s; a clock was ahead when they were made. Retention "
                        "keeps them and does not count them as newer; delete them by hand once checked",
                        now_local.isoformat(), ", ".join(map(str, p.future)))
        if isinstance(events, GuardEvents):
            events.future_backups([str(n) for n in p.future])
        for name in p.delete:
            log.info("retention: deleting %s", name)
            if catalog.delete(name, keep_if=functools.partial(frozen_reason, catalog, marks, name)):
                done.append(str(name))
        for name in catalog.orphans():
            if name == marked:
                continue
            log.info("retention: cleaning up %s, which a deletion killed midway left (no parts)", name)
            try:
                catalog.clean_orphan(name)
            except LockedError as e:  # a live writer holds it: not a leftover after all
                log.warning("retention: %s is in use, left as it is: %s", name, e)
                continue
            done.append(str(name))
    except SnapferryError as e:
        log.error("retention failed: %s", e)
        return False, done
    return True, done

