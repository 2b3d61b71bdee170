"""Plan a restore: what to delete, what to download, what is already there.

Pure decisions from two listings (the backup's parts, the target's files) plus
the journals of interrupted files; nothing here touches the target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from ..errors import BadBackupError
from ..local import TargetListing
from ..parts import (
    JOURNAL_SUFFIX,
    RESTORE_IN_PROGRESS_FILE,
    TMP_SUFFIX,
    Part,
    always_transfer,
    check_coverage,
    gc_paused,
    group_by_file,
    validate_path,
)
from .journal import read_journal

# Single-part files up to this size may be written as a batch (session.py): no
# preallocation, no fsync of their own, made durable together by one syncfs before
# the marker goes. After an interrupted restore their length proves nothing, so the
# planner fetches every such file again (see `_plan`). A constant, not a tuning knob:
# a rerun must distrust every file any earlier run may have batched.
BATCH_FILE_MAX = 1024 * 1024


def may_be_batched(plist: list[Part]) -> bool:
    return len(plist) == 1 and plist[0].file_size <= BATCH_FILE_MAX


class FileMode(Enum):
    """How a file is written; restorer/session.py gives the durability order of each."""

    NEW = "new"  # preallocated: a fresh `<file>.tmp`, renamed when whole
    RESUME = "resume"  # preallocated: the `.tmp` and journal of an interrupted run, kept
    INPLACE = "inplace"  # at its final name, in order, from the first missing part on


@dataclass(slots=True)
class FilePlan:
    path: str
    file_size: int
    parts: list[Part]  # parts still to download, by offset
    mode: FileMode
    # in-place mode: the file is cut to this length before writing resumes
    truncate_to: int = 0
    has_journal: bool = False
    # every part of the file, for verifying the whole file once it is written
    all_parts: list[Part] = field(default_factory=list)


@dataclass(slots=True)
class RestorePlan:
    files: list[FilePlan] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # local files/symlinks not in the backup
    delete_tmp: list[str] = field(default_factory=list)  # stale .tmp files and journals
    backup_bytes: int = 0
    download_bytes: int = 0
    resumed_bytes: int = 0  # bytes of partial files kept from an interrupted run
    # Whole small files an interrupted run left at their final names, fetched again
    # because nothing proves their bytes reached the disk.
    refetched_bytes: int = 0
    deleted_bytes: int = 0
    # Disk space the deletions and the discarded stale `.tmp`s give back before any
    # download starts: the free-space check counts it as free.
    freed_bytes: int = 0
    files_total: int = 0

    @property
    def parts_to_download(self) -> int:
        return sum(len(f.parts) for f in self.files)

    def space_needed(self) -> int:
        """Bytes a preallocated restore adds to the disk before any rename frees some."""
        return sum(f.file_size for f in self.files if f.mode is FileMode.NEW)


def plan_restore(
    parts: list[Part], target: TargetListing, target_root: str, preallocate: bool
) -> RestorePlan:
    with gc_paused():
        return _plan(parts, target, target_root, preallocate)


def _plan(parts: list[Part], target: TargetListing, target_root: str, preallocate: bool) -> RestorePlan:
    files = group_by_file(parts)
    for path in sorted(files):  # sorted: the same backup always names the same culprit
        validate_path(path)
    check_coverage(files)
    _check_no_file_dir_clash(files)

    plan = RestorePlan(files_total=len(files))
    plan.backup_bytes = sum(plist[0].file_size for plist in files.values())

    for path, entry in target.files.items():
        plist = files.get(path)
        # A larger stale file is kept: in place it is cut (see truncate_to), else replaced.
        if entry.is_link or plist is None:
            plan.delete.append(path)
            plan.deleted_bytes += entry.size

    tmp_set = set(target.tmp_files)
    journals_used: set[str] = set()
    # An interrupted restore may have renamed batched files whose bytes were never synced.
    interrupted = RESTORE_IN_PROGRESS_FILE in target.vm_markers
    for path, plist in files.items():
        file_size = plist[0].file_size
        local = target.files.get(path)
        local_size = None if local is None or local.is_link else local.size
        jpath = path + JOURNAL_SUFFIX
        # In place, the journal only marks "snapferry is writing this file": its
        # length then tells what is on disk. Other short files are not trusted.
        if (
            not preallocate
            and jpath in tmp_set
            and local_size is not None
            and read_journal(os.path.join(target_root, jpath), file_size) is not None
        ):
            journals_used.add(jpath)
            plan.files.append(_inplace_resume(path, plist, local_size))
            plan.resumed_bytes += plan.files[-1].truncate_to
            continue
        if local_size == file_size and not always_transfer(path):
            if not (interrupted and may_be_batched(plist)):
                continue
            plan.refetched_bytes += file_size
        if preallocate:
            tmp = path + TMP_SUFFIX
            done: set[tuple[int, int]] | None = None
            if tmp in tmp_set and jpath in tmp_set and len(plist) > 1:
                done = read_journal(os.path.join(target_root, jpath), file_size)
                if done is not None and _size_of(target_root, tmp) != file_size:
                    done = None
            if done:
                todo = [p for p in plist if (p.offset, p.size) not in done]
                journals_used.update((tmp, jpath))
                plan.resumed_bytes += file_size - sum(p.size for p in todo)
                plan.files.append(FilePlan(path, file_size, todo, FileMode.RESUME, has_journal=True, all_parts=plist))
            else:
                plan.files.append(
                    FilePlan(path, file_size, plist, FileMode.NEW, has_journal=len(plist) > 1, all_parts=plist)
                )
        else:
            plan.files.append(FilePlan(path, file_size, plist, FileMode.INPLACE, truncate_to=0, all_parts=plist))

    plan.delete_tmp = sorted(tmp_set - journals_used)
    plan.download_bytes = sum(p.size for f in plan.files for p in f.parts)
    plan.delete.sort()
    plan.freed_bytes = _freed_by_deletions(target, plan.delete) + sum(
        target.tmp_disk_bytes.get(t, 0) for t in plan.delete_tmp
    )
    return plan


def _freed_by_deletions(target: TargetListing, delete: list[str]) -> int:
    """Blocks the deletions give back: an inode only when all its links go."""
    freed = 0
    links_gone: dict[tuple[int, int], int] = {}
    for rel in delete:
        e = target.files[rel]
        if e.is_link:
            continue
        size = e.size if e.disk_bytes is None else e.disk_bytes
        if e.inode is None or e.nlink <= 1:
            freed += size
            continue
        links_gone[e.inode] = links_gone.get(e.inode, 0) + 1
        if links_gone[e.inode] == e.nlink:
            freed += size
    return freed


def _inplace_resume(path: str, plist: list[Part], local_size: int) -> FilePlan:
    """Parts are written in order and each is fdatasync'ed before the next, so every
    whole part below the length is on disk; the last one is fetched again even when
    the length is full, since its own sync happens only at the finish."""
    file_size = plist[0].file_size
    have = min(local_size, file_size)
    todo = [p for p in plist if p.end > have]
    if not todo:
        todo = plist[-1:]
    if always_transfer(path):
        todo = plist
    return FilePlan(
        path, file_size, todo, FileMode.INPLACE, truncate_to=todo[0].offset, all_parts=plist, has_journal=True
    )


def _size_of(root: str, rel: str) -> int:
    try:
        return os.stat(os.path.join(root, rel), follow_symlinks=False).st_size
    except OSError:
        return -1


def _check_no_file_dir_clash(files: dict[str, list[Part]]) -> None:
    dirs: set[str] = set()
    for path in files:
        d = path
        while "/" in d:
            d = d.rsplit("/", 1)[0]
            if d in dirs:
                break
            dirs.add(d)
    clash = dirs.intersection(files)
    if clash:
        name = sorted(clash)[0]
        raise BadBackupError(
            f"the backup is inconsistent: {name!r} is both a file and a directory; make a new backup"
        )
