"""The restore mark: `backup_restore.ignore` in the storage data path, naming the
backup `snapferry manager restore` restores on the next start of the database.

A mark made here always holds the full backup URL (`s3://b/vm/daily/2026-11-27`),
as vmbackupmanager's marks do: the operator's init container runs `restore
-storageDataPath=...` with no -dst, and the URL is all it has. A mark that holds
only a name of the layout (`daily/2026-11-27`, written by an older snapferry or by
hand) still restores where --dst is given.

Every URL is normalised to one spelling when the mark is written and when it is
read (no trailing slash; on fs:// no `//` nor `/./`), and retention compares the
place a mark names with the places of its backups, never the strings, so a
marked backup is never deleted because of how its URL was spelled.

A partial restore (docs/partial-restore.md) adds lines `partitions=YYYY_MM,...`
and/or `since=DURATION|DATE` after the first; vmbackupmanager's one-line marks
read as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
from dataclasses import dataclass

from ..durable import fsync_dir, write_file_atomic
from ..errors import BadBackupError, SnapferryError, UsageError
from ..lease import BackupLease
from ..names import BACKUP_COMPLETE_FILE, ENCRYPTED_COMPLETE_FILE, RESTORE_MARK_FILE
from ..partitions import parse_partition_names, parse_since
from ..remotes import Remote, RemoteOptions, open_remote, split_url
from ..remotes.location import local_location, location_of, overlaps
from ..remotes.retrying import with_retries
from ..retry import RetryPolicy
from .catalog import Catalog
from .layout import BackupName, parse_backup_name


@dataclass(frozen=True, slots=True)
class MarkSelection:
    """The month partitions a restore mark restores (both None: the whole backup)."""

    partitions: str | None = None
    since: str | None = None

    def lines(self) -> bytes:
        out = b""
        if self.partitions is not None:
            out += f"partitions={','.join(parse_partition_names(self.partitions))}\n".encode()
        if self.since is not None:
            parse_since(self.since, dt.datetime.now(dt.UTC))
            out += f"since={self.since.strip()}\n".encode()
        return out


def normal_url(url: str) -> str:
    """One spelling per place: `fs://` and the normalised absolute path, or
    `scheme://bucket/prefix` without slashes at the ends (UsageError for a bad URL)."""
    scheme, bucket, prefix = split_url(url.strip())
    if scheme == "fs":
        return "fs://" + prefix  # split_url normalised it: no `//`, `/./`, `..` nor trailing slash
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"


def _relative(path: str, root: str) -> str | None:
    """path below root as `a/b`, or None when it is not below it."""
    root = root.rstrip("/")
    if not path.startswith(root + "/"):
        return None
    return path[len(root) + 1:]


class RestoreMarks:
    def __init__(self, storage_data_path: str, catalog: Catalog | None,
                 options: RemoteOptions | None = None) -> None:
        self.storage_data_path = storage_data_path
        self.catalog = catalog
        # how to reach a URL mark's backup: the --dst's options, or the caller's without a --dst
        self.options = catalog.options if catalog is not None else options
        self.path = os.path.join(storage_data_path, RESTORE_MARK_FILE)

    def source_url(self, value: str) -> str:
        """The remote URL a mark's value stands for (validated, normalised)."""
        if "://" in value:
            return normal_url(value)
        name = parse_backup_name(value)
        if self.catalog is None:
            raise UsageError(
                f"the restore mark {self.path} names {value!r} without the place it is stored: pass --dst, "
                "or create the mark again with `snapferry manager restore create` (it then holds the full URL)"
            )
        return normal_url(self.catalog.remotes.url(str(name)))

    def create(self, value: str, validate: bool = True, selection: MarkSelection | None = None) -> str:
        """Mark `value` (a name under --dst or a full URL) for restore; returns the URL written.

        validate False (vmbackupmanager's -restore.disableSourceBackupValidation) skips the
        check that the backup exists and is complete: for a backup not reachable from here,
        or one a copy is still filling. The name and the overlap with the data path are
        always checked. `selection` makes it a partial restore of those month partitions."""
        value = value.strip()
        extra = (selection or MarkSelection()).lines()  # the syntax, before anything is checked remotely
        if "://" not in value:
            name = parse_backup_name(value)
            if self.catalog is None:
                raise UsageError(f"pass --dst to say where {value} is stored (or mark its full URL)")
            if validate:
                self.catalog.require_complete(name)
            value = self.catalog.remotes.url(str(name))
        url = normal_url(value)
        if not os.path.isdir(self.storage_data_path):
            raise UsageError(f"the storage data path {self.storage_data_path} is not a directory; check it")
        remote = with_retries(open_remote(url, self.options), RetryPolicy())
        try:
            # A restore deletes what the backup lacks from the data path: a backup inside it
            # (or holding it) would be destroyed by the restore it asks for.
            if overlaps(location_of(remote), local_location(os.path.realpath(self.storage_data_path))):
                raise UsageError(
                    f"{url} overlaps the storage data path {self.storage_data_path}, which the "
                    "restore overwrites; mark a backup stored elsewhere"
                )
            incomplete = BadBackupError(
                f"{url} has no {BACKUP_COMPLETE_FILE}: it is missing or incomplete; pick a complete backup")
            if validate and not _complete(remote):
                raise incomplete  # before the lease: a missing backup gets no lease object either
            own = self.own_name(url)
            # One of our dated backups is marked under its lease, as a run copies into it under
            # that lease: the run either finishes first or sees the mark and leaves it as it is.
            with BackupLease(self.catalog.open(own), "restore mark") if (
                    validate and own is not None and self.catalog is not None) else contextlib.nullcontext():
                if validate and not _complete(remote):  # again, under the lease
                    raise incomplete
                write_file_atomic(self.path, url.encode() + b"\n" + extra)
        finally:
            remote.close()
        return url

    def _lines(self) -> list[str] | None:
        try:
            # O_NONBLOCK: a FIFO there must not hang the init container; only a file is a mark.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SnapferryError(f"cannot read the restore mark {self.path}: {e.strerror}") from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SnapferryError(f"the restore mark {self.path} is not a regular file; remove it, and create "
                                     "the mark again with `snapferry manager restore create`")
            raw = os.read(fd, 4096)
        except OSError as e:
            raise SnapferryError(f"cannot read the restore mark {self.path}: {e.strerror}") from e
        finally:
            os.close(fd)
        return [ln.strip() for ln in raw.decode("utf-8", "replace").strip().splitlines() if ln.strip()] or [""]

    def selection(self) -> MarkSelection:
        """The partitions the mark restores (MarkSelection() for a whole backup)."""
        found: dict[str, str] = {}
        for line in (self._lines() or [])[1:]:
            key, sep, val = line.partition("=")
            if not sep or key not in ("partitions", "since"):
                raise UsageError(
                    f"the restore mark {self.path} holds {line!r}, not partitions=... nor since=...; delete it "
                    "with `snapferry manager restore delete` and create it again"
                )
            if key in found:  # which line wins is a guess; a wrong guess deletes the other months
                raise UsageError(
                    f"the restore mark {self.path} holds {key}= twice; delete it with `snapferry manager restore "
                    "delete` and create it again"
                )
            found[key] = val
        sel = MarkSelection(found.get("partitions"), found.get("since"))
        sel.lines()  # validated as on write
        return sel

    def get(self) -> str | None:
        """The mark: a normalised URL, or a bare name of the layout (an older mark)."""
        lines = self._lines()
        if lines is None:
            return None
        value = lines[0]
        try:
            return normal_url(value) if "://" in value else str(parse_backup_name(value))
        except UsageError as e:
            raise UsageError(
                f"the restore mark {self.path} holds {value!r}, not a backup name nor a URL; delete it with "
                "`snapferry manager restore delete` and create it again"
            ) from e

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
            fsync_dir(self.storage_data_path)

    def marked_backup(self) -> BackupName | None:
        """The backup of this --dst the mark names (by name, or by a URL of a place under
        the --dst however spelled), or None: retention keeps it and runs leave it as it is
        until the restore (or a user) removes the mark."""
        value = self.get()
        if value is None or self.catalog is None:
            return None
        if "://" not in value:
            return parse_backup_name(value)
        return self.own_name(value)

    def own_name(self, url: str) -> BackupName | None:
        """The backup of this --dst at `url` (a place, however spelled), or None."""
        if self.catalog is None:
            return None
        scheme, bucket, path = split_url(url)
        dscheme, dbucket, dpath = split_url(self.catalog.dst)
        if (scheme, bucket) != (dscheme, dbucket):
            return None  # another store's backup: not ours to keep or delete
        pairs = [(path, dpath)]
        if scheme == "fs":  # the same directory through a symlink or another spelling of the root
            pairs.append((os.path.realpath(path), os.path.realpath(dpath)))
        elif not dpath:
            return _parse_or_none(path)
        for p, root in pairs:
            rel = _relative(p, root)
            if rel is not None and (name := _parse_or_none(rel)) is not None:
                return name
        return None


def _parse_or_none(rel: str) -> BackupName | None:
    try:
        return parse_backup_name(rel)
    except UsageError:
        return None


def _complete(remote: Remote) -> bool:
    """A whole backup, plain or encrypted (whose marker has its own name)."""
    return remote.has_file(BACKUP_COMPLETE_FILE) or remote.has_file(ENCRYPTED_COMPLETE_FILE)
