"""The backups under --dst: list them, lock and unlock them, delete one.

Reads the remote directly (no server needed), so the CLI and the service share it.
Each backup is opened as a remote of its own prefix, so deleting one never
touches another's objects.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import BadBackupError, SnapferryError, UsageError
from ..lease import BackupLease
from ..names import (
    BACKUP_COMPLETE_FILE,
    BACKUP_LOCKED_FILE,
    BACKUP_METADATA_FILE,
    ENCRYPTED_COMPLETE_FILE,
    ENCRYPTION_RECORD_FILE,
    LATEST,
    LEASE_FILE,
    MANIFEST_FILE,
)
from ..remotes import Remote, RemoteOptions, local_tree
from ..retry import RetryPolicy
from ..settings import DEFAULT_CONCURRENCY
from ..workers import parallel
from .layout import DATED_TYPES, BackupName, BackupType, parse_backup_name
from .remotes import DstRemotes

log = logging.getLogger("snapferry")

_UNITS = ("", "ki", "Mi", "Gi", "Ti", "Pi")

# What a backup holds beside its parts and its completion marker: a prefix holding only
# these (or, on fs://, nothing but empty directories) is what a deletion killed midway left.
_LEFTOVERS = frozenset({LEASE_FILE, BACKUP_METADATA_FILE, MANIFEST_FILE, BACKUP_LOCKED_FILE})


class NoSuchBackupError(UsageError):
    """A backup name that is valid but not present under --dst."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    name: str
    size_bytes: int
    created_at: datetime
    locked: bool
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """vmbackupmanager's list item: name, size_bytes, size, created_at, locked, state."""
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "size": human_size(self.size_bytes),
            "created_at": self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "locked": self.locked,
            "state": "complete" if self.complete else "incomplete",
        }


def human_size(n: int) -> str:
    """vmbackupmanager's short sizes: 311.4ki, 1.2Gi."""
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f}{unit}" if unit else f"{n}"
        value /= 1024
    return f"{n}"


class Catalog:
    """The backups of one --dst; close() it when done."""

    def __init__(self, dst: str, options: RemoteOptions, concurrency: int = DEFAULT_CONCURRENCY,
                 retry: RetryPolicy | None = None) -> None:
        self.remotes = DstRemotes(dst, options, retry)
        self.dst = self.remotes.dst
        self.options = options
        self.concurrency = concurrency

    def open(self, name: BackupName) -> Remote:
        """The backup's remote (shares the root's client: never close it)."""
        return self.remotes.child(str(name))

    def close(self) -> None:
        self.remotes.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names_and_sizes(self) -> dict[BackupName, int]:
        """Every backup of the layout that holds parts, with its size; other prefixes are skipped."""
        parts = self.remotes.root.list_parts()
        sizes: dict[BackupName, int] = {}
        seen_bad: set[str] = set()
        for p in parts:
            segs = p.path.split("/", 2)
            head = segs[0] if segs[0] == LATEST else "/".join(segs[:2])
            if head in seen_bad:
                continue
            try:
                name = parse_backup_name(head)
            except UsageError:
                seen_bad.add(head)
                continue
            sizes[name] = sizes.get(name, 0) + p.actual_size
        return sizes

    def list(self) -> list[BackupInfo]:
        sizes = self.names_and_sizes()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, 16)) as pool:
            infos = list(pool.map(lambda n: self._info(n, sizes[n]), sorted(sizes, key=str)))
        return infos

    def info(self, name: BackupName) -> BackupInfo:
        """One backup's info; NoSuchBackupError when it holds nothing."""
        remote = self.open(name)
        size = sum(p.actual_size for p in remote.list_parts())
        if size == 0 and not _complete(remote):
            raise NoSuchBackupError(
                f"there is no backup {name} in {self.dst}; list them with `snapferry manager backup list`"
            )
        return self._info(name, size)

    def _info(self, name: BackupName, size: int) -> BackupInfo:
        remote = self.open(name)
        return BackupInfo(
            name=str(name),
            size_bytes=size,
            created_at=_created_at(remote, name),
            locked=name.type is not BackupType.LATEST and remote.has_file(BACKUP_LOCKED_FILE),
            complete=_complete(remote),
        )

    def set_locked(self, name: BackupName, locked: bool) -> BackupInfo:
        if name.type is BackupType.LATEST:
            raise UsageError("latest is never deleted by retention and cannot be locked; lock a dated backup")
        self.info(name)  # exists?
        remote = self.open(name)
        # under the backup's lease: a run copying into it finishes first (or sees the lock)
        with BackupLease(remote, "lock"):
            if locked:
                remote.write_file(BACKUP_LOCKED_FILE, b"")
            else:
                remote.delete_file(BACKUP_LOCKED_FILE)
        return self.info(name)

    def require_complete(self, name: BackupName) -> None:
        info = self.info(name)
        if not info.complete:
            raise BadBackupError(
                f"the backup {name} in {self.dst} is incomplete (no {BACKUP_COMPLETE_FILE}); "
                "pick a complete one from `snapferry manager backup list`"
            )

    def delete(self, name: BackupName, keep_if: Callable[[], str | None] | None = None) -> bool:
        """Delete one dated backup: its completion marker first, so a crash never leaves
        a partial backup that looks whole; under its lease, so no copy writes meanwhile.
        keep_if, asked under the lease (which a lock and a mark take too), names a reason
        to keep it after all (a mark or a lock made since retention listed the backups):
        then nothing is deleted and False is returned."""
        if name.type is BackupType.LATEST:
            raise UsageError("refusing to delete latest: it is the base of every run")
        remote = self.open(name)
        with BackupLease(remote, "retention"):
            if keep_if is not None and (why := keep_if()) is not None:
                log.info("retention: keeping %s, %s since it was listed", name, why)
                return False
            if remote.has_file(BACKUP_LOCKED_FILE):
                raise UsageError(f"the backup {name} is locked; unlock it first")
            remote.delete_file(BACKUP_COMPLETE_FILE)
            remote.delete_file(ENCRYPTED_COMPLETE_FILE)
            parallel(self.concurrency, remote.list_parts(), remote.delete_part)
            for f in (MANIFEST_FILE, BACKUP_METADATA_FILE, ENCRYPTION_RECORD_FILE):
                remote.delete_file(f)
        # On fs:// the backup's own directory goes too (its parent keeps the other backups);
        # object stores have no directories.
        if (tree := local_tree(self.remotes.child(name.type.value))) is not None:
            tree.prune_empty_dirs()
        return True

    def orphans(self) -> tuple[BackupName, ...]:
        """Dated backups of the layout with no parts and no completion marker that still hold
        only a lease, metadata, manifest or lock file, or (fs://) only empty directories:
        what a deletion killed midway leaves. A prefix with any other object is left alone
        (it is not ours to judge), and so is every name outside the layout."""
        verdict: dict[BackupName, bool] = {}
        for path, _size in self.remotes.root.list_objects():
            segs = path.split("/")
            if len(segs) < 3:
                continue
            try:
                name = parse_backup_name(f"{segs[0]}/{segs[1]}")
            except UsageError:
                continue
            leftover = len(segs) == 3 and segs[2] in _LEFTOVERS
            verdict[name] = verdict.get(name, True) and leftover
        if (tree := local_tree(self.remotes.root)) is not None:
            for name in _empty_dirs(tree.root):
                verdict.setdefault(name, True)
        return tuple(sorted((n for n, ok in verdict.items() if ok), key=str))

    def clean_orphan(self, name: BackupName) -> None:
        """Delete what a killed deletion left of `name`, under its lease (a lease left by the
        killed process is taken over once that process is gone); checked again under it."""
        remote = self.open(name)
        with BackupLease(remote, "retention cleanup"):
            if _complete(remote) or remote.list_parts():
                log.warning("%s is being written again; it is left as it is", name)
                return
            for f in (MANIFEST_FILE, BACKUP_METADATA_FILE, BACKUP_LOCKED_FILE, ENCRYPTION_RECORD_FILE):
                remote.delete_file(f)
        if (tree := local_tree(self.remotes.child(name.type.value))) is not None:
            tree.prune_empty_dirs()


def _empty_dirs(root: str) -> list[BackupName]:
    """The dated backups under an fs:// root that are directories holding no file at all
    (symlinks are never followed: they are not directories of ours)."""
    found: list[BackupName] = []
    for kind in DATED_TYPES:
        top = os.path.join(root, kind.value)
        if os.path.islink(top):  # a type directory elsewhere is not below the root: never listed here
            continue
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            try:
                name = parse_backup_name(f"{kind.value}/{e.name}")
            except UsageError:
                continue
            if not any(files or any(os.path.islink(os.path.join(d, x)) for x in dirs)
                       for d, dirs, files in os.walk(e.path)):
                found.append(name)
    return found


def _complete(remote: Remote) -> bool:
    """A whole backup, plain or encrypted (whose marker has its own name)."""
    return remote.has_file(BACKUP_COMPLETE_FILE) or remote.has_file(ENCRYPTED_COMPLETE_FILE)


def _created_at(remote: Remote, name: BackupName) -> datetime:
    """The snapshot time recorded in backup_metadata.ignore; the period's start without one."""
    try:
        if remote.has_file(BACKUP_METADATA_FILE):
            meta = json.loads(remote.read_file(BACKUP_METADATA_FILE))
            if isinstance(meta, dict) and isinstance(meta.get("created_at"), str):
                t = datetime.fromisoformat(meta["created_at"].replace("Z", "+00:00"))
                # vmbackupmanager's form is UTC; a zone-less time (another writer's) is taken as UTC,
                # never as the manager's local time
                return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (SnapferryError, ValueError) as e:
        log.warning("cannot read the metadata of %s: %s", name, e)
    return name.period_start()
