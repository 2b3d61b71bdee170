"""Restore: bring a target directory to exactly the backup's content, fast.

Order (see docs/usage.md): every check that needs no write first (the backup's
marker and listing, coverage and path checks in the plan, the wrong-directory
guard, free space), so a refused restore leaves the target exactly as it was;
then the lock, `restore-in-progress`, delete what the backup does not have,
download what is missing, sync every directory, and only then remove
`restore-in-progress`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

from .. import durable
from ..checksums import check_inventory
from ..errors import BadBackupError, NoSpaceError, UsageError
from ..local import TargetListing, list_target
from ..lock import DirLock
from ..names import BACKUP_COMPLETE_FILE, FLOCK_FILE, JOURNAL_SUFFIX
from ..partitions import PartitionFilter, Selection, select, selected_parts
from ..parts import Part
from ..progress import Progress, human_bytes
from ..remotes.base import Remote, local_tree
from ..remotes.location import local_location, location_of, within
from ..remotes.retrying import with_retries
from ..restorer.downloader import Downloader, Tuning
from ..restorer.planner import RestorePlan, plan_restore
from ..restorer.session import RestoreSession
from ..results import PartitionSize, PlannedFile, RestoreDryRun, RestoreResult
from ..settings import RunSettings
from .complete import refuse_incomplete
from .opening import Where, opened, reading

log = logging.getLogger("snapferry")


def check_target(dst: str, src: Remote) -> str:
    """Resolve dst and refuse targets that would damage the backup or are not dirs."""
    if not os.path.isabs(dst):
        dst = os.path.abspath(dst)
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise UsageError(f"the restore target {dst!r} is a file; --dst must be a directory")
    real = os.path.realpath(dst)
    # The overlap rule of copy and backup, for every kind of backup: location_of sees through
    # wrappers (an encrypted fs:// backup is where its files are; asking local_tree of the
    # wrapper let a restore into its own backup directory delete the backup), and an object
    # store's place never lies within a local directory's.
    here, there = local_location(real), location_of(src)
    if within(here, there):
        raise UsageError(
            f"the restore target {dst!r} is inside the backup {src.url}; pick a directory outside it"
        )
    if within(there, here):
        raise UsageError(
            f"the backup {src.url} is inside the restore target {dst!r}, which a restore "
            "would delete; pick another target"
        )
    return real


@dataclass(slots=True)
class _Checked:
    """What every precheck found, before anything in the target changed."""

    parts: list[Part]
    listing: TargetListing
    plan: RestorePlan
    expected: dict[str, list[int]] | None
    space: SpaceCheck
    selection: Selection | None = field(default=None)

    def partition_sizes(self) -> tuple[PartitionSize, ...]:
        sel = self.selection
        return () if sel is None else tuple(PartitionSize(p.name, p.bytes) for p in sel.partitions)


def _lock_if_present(root: str) -> DirLock | None:
    """Take the lock now when flock.lock is already there (opening it creates nothing):
    a running VictoriaMetrics is then refused before any work; otherwise the lock is
    taken only once every precheck passed, so a refused restore leaves no lock file."""
    if os.path.isfile(os.path.join(root, FLOCK_FILE)):
        return DirLock(root, "restore")
    return None


def _replan_if_changed(checked: _Checked, root: str, preallocate: bool, force: bool) -> _Checked:
    """The target was listed before the lock was held: list it again under the lock
    and plan again if anything changed in between."""
    listing = list_target(root)
    if listing.files == checked.listing.files and listing.tmp_files == checked.listing.tmp_files:
        return checked
    plan = plan_restore(checked.parts, listing, root, preallocate)
    _refuse_foreign_target(root, listing, plan, force)
    return _Checked(
        checked.parts, listing, plan, checked.expected, check_space(root, plan, preallocate), checked.selection
    )


@dataclass(frozen=True)
class Restore:
    """A restore of the backup at `src` into the directory `dst`: `Restore(...).run()`, or
    `.dry_run()` for every check and the plan, changing nothing.

    `src` is a URL the run opens and closes, or a remote the caller lends; with the key of
    `settings` it is read with it. `tuning` defaults to Tuning(concurrency=settings.concurrency);
    `only` selects month partitions (a partial restore, docs/partial-restore.md)."""

    src: Where
    dst: str
    settings: RunSettings = field(default_factory=RunSettings)
    tuning: Tuning | None = None
    preallocate: bool = True
    skip_backup_complete_check: bool = False
    verify: bool = False  # re-read every file written before its rename
    force: bool = False  # restore into a directory that looks like no data directory
    checksums: bool = True  # check downloaded bytes against the manifest in memory
    only: PartitionFilter = field(default_factory=PartitionFilter)

    def run(self) -> RestoreResult:
        self.only.check()
        with contextlib.ExitStack() as stack:
            src = reading(opened(stack, self.src, self.settings), self.settings.key)
            return self._run(src)

    def dry_run(self) -> RestoreDryRun:
        """Every check the restore makes and its plan; no directory, no lock file, no marker (a
        lock already there is taken and released, to report a running VictoriaMetrics)."""
        self.only.check()
        with contextlib.ExitStack() as stack:
            src = reading(opened(stack, self.src, self.settings), self.settings.key)
            start = time.monotonic()
            root, lock, c = self._checked_target(src)
            if lock is not None:
                lock.close()
            return _dry_run_result(src, root, c, time.monotonic() - start)

    def _checked_target(self, src: Remote) -> tuple[str, DirLock | None, _Checked]:
        """The resolved target, its lock when flock.lock was there, and every precheck passed."""
        root = check_target(self.dst, src)
        lock = _lock_if_present(root)
        try:
            return root, lock, self._precheck(src, root)
        except BaseException:
            if lock is not None:
                lock.close()
            raise

    def _precheck(self, src: Remote, root: str) -> _Checked:
        """Every check that can be made without writing: marker, listing, coverage and
        path safety (in the plan), checksums, the wrong-directory guard and free space."""
        if not self.skip_backup_complete_check:
            refuse_incomplete(src, " or was made by an old tool; finish the backup, or pass "
                                   "--skip-backup-complete-check to restore it anyway")
        log.info("listing parts of %s", src.url)
        parts = src.list_parts()
        if not parts and not src.has_file(BACKUP_COMPLETE_FILE):
            raise BadBackupError(f"{src.url} holds no backup; check the --src URL")
        # A partial restore plans over the selected months and every non-partition file
        # only, so the target ends as exactly that part of the backup; the inventory is
        # still checked over the whole listing (the manifest lists every part).
        wanted = parts
        selection = select(parts, partitions=self.only.partitions, since=self.only.since,
                           now=dt.datetime.now(dt.UTC), src=src.url)
        if selection is not None:
            wanted = selected_parts(parts, selection)
        listing = list_target(root)
        plan = plan_restore(wanted, listing, root, self.preallocate)
        _refuse_empty_backup(src, root, parts, plan, self.force)  # the whole backup: a selection is never empty
        expected = check_inventory(src, parts, verify=self.verify)
        _refuse_foreign_target(root, listing, plan, self.force)
        return _Checked(wanted, listing, plan, expected, check_space(root, plan, self.preallocate), selection)

    def _run(self, src: Remote) -> RestoreResult:
        start = time.monotonic()
        src = with_retries(src, self.settings.retry)  # the run's one retry layer, on top
        root, lock, c = self._checked_target(src)
        preallocate = self.preallocate
        session: RestoreSession | None = None
        try:
            if lock is None:
                os.makedirs(root, exist_ok=True)
                lock = DirLock(root, "restore")
                c = _replan_if_changed(c, root, preallocate, self.force)
            plan = c.plan
            # From here on the target changes: a database must not start on it until session.end().
            session = RestoreSession(root)
            session.begin()
            _apply_deletions(session, plan)

            tuning = self.tuning or Tuning(concurrency=self.settings.concurrency)
            log.info(
                "restoring %s to %s: %s to download in %d parts, %s kept",
                src.url, root, human_bytes(plan.download_bytes), plan.parts_to_download,
                human_bytes(plan.backup_bytes - plan.download_bytes),
            )
            progress = Progress("restore", plan.download_bytes, self.settings.progress)
            tree = local_tree(src)  # fs://: parts are read with in-kernel copies from their files
            dl = Downloader(
                src.open_part, session, plan.files, tuning, self.settings.throttle(), progress, c.expected,
                reread=self.verify, in_memory=self.checksums,
                local_path=tree.part_path if tree is not None else None, source=src.url,
            )
            with progress:
                dl.run()
            session.end()
        finally:
            if session is not None:
                session.close()
            if lock is not None:
                lock.close()
        return RestoreResult(
            src=src.url,
            dst=root,
            backup_bytes=plan.backup_bytes,
            downloaded_bytes=plan.download_bytes,
            resumed_bytes=plan.resumed_bytes,
            kept_bytes=plan.backup_bytes - plan.download_bytes,
            deleted_bytes=plan.deleted_bytes,
            files_total=plan.files_total,
            files_written=len(plan.files),
            files_deleted=len(plan.delete),
            parts_downloaded=plan.parts_to_download,
            parts_verified=dl.verified_parts,
            parts_unverified=sum(len(f.all_parts) for f in plan.files) - dl.verified_parts,
            seconds=time.monotonic() - start,
            partitions=c.partition_sizes(),
        )


def _dry_run_result(src: Remote, root: str, c: _Checked, seconds: float) -> RestoreDryRun:
    plan = c.plan
    entries = c.listing.files
    return RestoreDryRun(
        src=src.url,
        dst=root,
        dst_exists=os.path.isdir(root),
        backup_bytes=plan.backup_bytes,
        files_total=plan.files_total,
        delete=tuple(PlannedFile(p, entries[p].size) for p in plan.delete),
        delete_tmp=tuple(plan.delete_tmp),
        download=tuple(PlannedFile(f.path, sum(p.size for p in f.parts)) for f in plan.files),
        parts_to_download=plan.parts_to_download,
        bytes_to_download=plan.download_bytes,
        bytes_kept=plan.backup_bytes - plan.download_bytes,
        space_needed=c.space.needed,
        space_free=c.space.free,
        space_freed=c.space.freed,
        seconds=seconds,
        partitions=c.partition_sizes(),
    )


@dataclass(frozen=True, slots=True)
class SpaceCheck:
    needed: int  # bytes the restore adds before any rename frees some
    free: int  # free on the target's filesystem now
    freed: int  # given back by the deletions and discarded stale .tmp files, before any download


def check_space(root: str, plan: RestorePlan, preallocate: bool) -> SpaceCheck:
    """Refuse a restore that cannot fit; what it deletes first counts as free."""
    need = plan.space_needed() if preallocate else plan.download_bytes
    st = os.statvfs(_existing_ancestor(root))
    space = SpaceCheck(need, st.f_bavail * st.f_frsize, plan.freed_bytes)
    if need > space.free + space.freed:
        raise NoSpaceError(
            f"the restore needs {human_bytes(need)} in {root!r} but only {human_bytes(space.free)} is free "
            f"(and {human_bytes(space.freed)} will be freed by deleting files the backup lacks and stale .tmp files); "
            "free space and rerun"
        )
    return space


def _existing_ancestor(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def _refuse_foreign_target(root: str, listing: TargetListing, plan: RestorePlan, force: bool) -> None:
    """A restore deletes every file the backup lacks: refuse to do that in a directory
    that is neither a VictoriaMetrics data directory nor an earlier restore (a typo
    such as --dst /tmp or a home directory), unless --force."""
    # Of our traces only a journal counts: `.tmp` files are everywhere in /tmp, and an
    # interrupted restore also leaves restore-in-progress and flock.lock.
    ours = any(t.endswith(JOURNAL_SUFFIX) for t in listing.tmp_files)
    doomed = plan.delete + plan.delete_tmp
    if force or not doomed or listing.vm_markers or ours:
        return
    raise UsageError(
        f"the restore target {root!r} does not look like a VictoriaMetrics data directory (no flock.lock, "
        f"data/, indexdb/ or restore-in-progress) and the restore would delete {len(doomed)} files in it that the "
        f"backup lacks, e.g. {doomed[0]!r}; check --dst, or pass --force to delete them"
    )


def _refuse_empty_backup(src: Remote, root: str, parts: list[Part], plan: RestorePlan, force: bool) -> None:
    """A backup with no parts (only its markers: what a vmbackup pointed at a parent prefix
    leaves) would empty the target; a restore of it into an empty directory is harmless."""
    if force or parts or not plan.delete:
        return
    raise BadBackupError(
        f"{src.url} holds no parts (only its markers), so restoring it would delete all {len(plan.delete)} "
        f"files in {root!r}; check the --src URL (a backup sits where backup_complete.ignore sits beside "
        "data/ and indexdb/), or pass --force to empty the directory"
    )


def _apply_deletions(session: RestoreSession, plan: RestorePlan) -> None:
    """Delete what the backup does not have; the session syncs their directories."""
    root = session.root
    for rel in plan.delete_tmp + plan.delete:
        path = os.path.join(root, rel)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        session.deleted(path)
    if plan.delete or plan.delete_tmp:
        durable.remove_empty_dirs(root, keep_root=True)
