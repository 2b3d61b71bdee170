"""Restore: bring a target directory to exactly the backup's content, fast.

Order (see docs in the README): lock, `restore-in-progress`, check the marker,
plan (coverage and path checks before anything changes), delete what the
backup does not have, download what is missing, sync every directory, and
only then remove `restore-in-progress`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from .. import durable
from ..checksums import MANIFEST_FILE, decode, verifiable
from ..errors import BadBackupError, NoSpaceError, UsageError
from ..local import list_target
from ..lock import DirLock
from ..parts import BACKUP_COMPLETE_FILE, RESTORE_IN_PROGRESS_FILE, Part
from ..progress import Progress, human_bytes
from ..remotes.base import Remote
from ..remotes.location import local_location, location_of, within
from ..restorer.downloader import Downloader, Tuning
from ..restorer.planner import RestorePlan, plan_restore
from ..results import RestoreResult
from ..retry import RetryPolicy
from ..throttle import Throttle

log = logging.getLogger("snapferry")


def check_target(dst: str, src: Remote) -> str:
    """Resolve dst and refuse targets that would damage the backup or are not dirs."""
    if not os.path.isabs(dst):
        dst = os.path.abspath(dst)
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise UsageError(f"the restore target {dst!r} is a file; --dst must be a directory")
    real = os.path.realpath(dst)
    src_root = getattr(src, "root", None)
    if isinstance(src_root, str):
        here, there = local_location(real), location_of(src)  # the overlap rule of copy and backup
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


def run_restore(
    src: Remote,
    dst: str,
    *,
    preallocate: bool = True,
    skip_backup_complete_check: bool = False,
    tuning: Tuning | None = None,
    throttle: Throttle | None = None,
    retry: RetryPolicy | None = None,
    progress_mode: str = "auto",
    verify: bool = False,
) -> RestoreResult:
    start = time.monotonic()
    root = check_target(dst, src)
    os.makedirs(root, exist_ok=True)
    lock = DirLock(root, "restore")
    try:
        marker = os.path.join(root, RESTORE_IN_PROGRESS_FILE)
        with open(marker, "wb") as mf:
            os.fsync(mf.fileno())
        durable.fsync_dir(root)

        if not skip_backup_complete_check and not src.has_file(BACKUP_COMPLETE_FILE):
            raise BadBackupError(
                f"{src.url} has no {BACKUP_COMPLETE_FILE}: the backup is incomplete or was made by an "
                "old tool; finish the backup, or pass --skip-backup-complete-check to restore it anyway"
            )
        log.info("listing parts of %s", src.url)
        parts = src.list_parts()
        if not parts and not src.has_file(BACKUP_COMPLETE_FILE):
            raise BadBackupError(f"{src.url} holds no backup; check the --src URL")
        plan = plan_restore(parts, list_target(root), root, preallocate)
        expected = _load_checksums(src, parts) if verify else None
        _check_space(root, plan, preallocate)
        synced_dirs: set[str] = {root} | _apply_deletions(root, plan)

        tuning = tuning or Tuning()
        log.info(
            "restoring %s to %s: %s to download in %d parts, %s kept",
            src.url, root, human_bytes(plan.download_bytes), plan.parts_to_download,
            human_bytes(plan.backup_bytes - plan.download_bytes),
        )
        progress = Progress("restore", plan.download_bytes, progress_mode)
        dl = Downloader(
            src, root, plan.files, tuning, throttle or Throttle(0), progress, retry or RetryPolicy(), expected
        )
        with progress:
            dl.run()
        synced_dirs |= dl.synced_dirs

        # Every rename and unlink must be durable before the marker goes.
        for d in sorted(synced_dirs, key=len, reverse=True):
            if os.path.isdir(d):
                durable.fsync_dir(d)
        os.unlink(marker)
        durable.fsync_dir(root)
    finally:
        lock.close()
    seconds = time.monotonic() - start
    return RestoreResult(
        src=src.url,
        dst=root,
        backup_bytes=plan.backup_bytes,
        downloaded_bytes=plan.download_bytes,
        resumed_bytes=plan.resumed_bytes,
        deleted_bytes=plan.deleted_bytes,
        files_total=plan.files_total,
        files_written=len(plan.files),
        files_deleted=len(plan.delete),
        parts_downloaded=plan.parts_to_download,
        parts_verified=dl.verified_parts,
        parts_unverified=sum(len(f.all_parts) for f in plan.files) - dl.verified_parts,
        seconds=seconds,
    )


def _load_checksums(src: Remote, parts: list[Part]) -> dict[str, list[int]]:
    if not src.has_file(MANIFEST_FILE):
        log.warning("%s has no %s (made by another tool?): nothing to verify against", src.url, MANIFEST_FILE)
        return {}
    manifest = decode(src.read_file(MANIFEST_FILE))
    if manifest is None:
        log.warning("%s: %s is of an unknown version; not verifying", src.url, MANIFEST_FILE)
        return {}
    return verifiable(parts, manifest)


def _check_space(root: str, plan: RestorePlan, preallocate: bool) -> None:
    need = plan.space_needed() if preallocate else plan.download_bytes
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    if need > free:
        raise NoSpaceError(
            f"the restore needs {human_bytes(need)} in {root!r} but only {human_bytes(free)} is free; "
            "free space and rerun"
        )


def _apply_deletions(root: str, plan: RestorePlan) -> set[str]:
    """Delete what the backup does not have; return the directories to sync."""
    touched: set[str] = set()
    for rel in plan.delete_tmp + plan.delete:
        path = os.path.join(root, rel)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        d = os.path.dirname(path)
        while len(d) > len(root):
            touched.add(d)
            d = os.path.dirname(d)
    if plan.delete or plan.delete_tmp:
        durable.remove_empty_dirs(root, keep_root=True)
    return touched
