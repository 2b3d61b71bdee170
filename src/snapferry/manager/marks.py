"""The restore mark: `backup_restore.ignore` in the storage data path, naming the
backup `snapferry manager restore` restores on the next start of the database.

It holds a backup name of the layout (`daily/2026-11-27`) or a full remote URL
(a backup of another --dst, e.g. another cluster's). Written atomically and
durably; both forms are validated on write and again on read.
"""

from __future__ import annotations

import contextlib
import os

from ..durable import fsync_dir, write_file_atomic
from ..errors import BadBackupError, SnapferryError, UsageError
from ..names import BACKUP_COMPLETE_FILE, ENCRYPTED_COMPLETE_FILE, RESTORE_MARK_FILE
from ..remotes import RemoteOptions, open_remote, split_url
from ..remotes.location import local_location, location_of, overlaps
from .catalog import Catalog
from .layout import BackupName, parse_backup_name


class RestoreMarks:
    def __init__(self, storage_data_path: str, catalog: Catalog | None,
                 options: RemoteOptions | None = None) -> None:
        self.storage_data_path = storage_data_path
        self.catalog = catalog
        # how to reach a URL mark's backup: the --dst's options, or the caller's without a --dst
        self.options = catalog.options if catalog is not None else options
        self.path = os.path.join(storage_data_path, RESTORE_MARK_FILE)

    def source_url(self, value: str) -> str:
        """The remote URL a mark's value stands for (validated)."""
        if "://" in value:
            split_url(value)
            return value.rstrip("/")
        name = parse_backup_name(value)
        if self.catalog is None:
            raise UsageError(f"the restore mark names {value!r}: pass --dst to say where it is")
        return self.catalog.remotes.url(str(name))

    def create(self, value: str) -> None:
        """Mark `value` for restore after checking the backup exists and is complete."""
        value = value.strip()
        if "://" in value:
            split_url(value)
            remote = open_remote(value, self.options)
            try:
                # A restore deletes what the backup lacks from the data path: a backup inside it
                # (or holding it) would be destroyed by the restore it asks for.
                if overlaps(location_of(remote), local_location(os.path.realpath(self.storage_data_path))):
                    raise UsageError(
                        f"{value} overlaps the storage data path {self.storage_data_path}, which the "
                        "restore overwrites; mark a backup stored elsewhere"
                    )
                if not (remote.has_file(BACKUP_COMPLETE_FILE) or remote.has_file(ENCRYPTED_COMPLETE_FILE)):
                    raise BadBackupError(
                        f"{value} has no {BACKUP_COMPLETE_FILE}: it is missing or incomplete; pick a complete backup"
                    )
            finally:
                remote.close()
        else:
            name = parse_backup_name(value)
            if self.catalog is None:
                raise UsageError("pass --dst: the restore mark must be checked against the backups there")
            self.catalog.require_complete(name)
        if not os.path.isdir(self.storage_data_path):
            raise UsageError(f"the storage data path {self.storage_data_path} is not a directory; check it")
        write_file_atomic(self.path, value.encode() + b"\n")

    def get(self) -> str | None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(4096)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SnapferryError(f"cannot read the restore mark {self.path}: {e.strerror}") from e
        value = raw.decode("utf-8", "replace").strip()
        try:
            if "://" in value:
                split_url(value)
            else:
                parse_backup_name(value)
        except UsageError as e:
            raise UsageError(
                f"the restore mark {self.path} holds {value!r}, not a backup name nor a URL; delete it with "
                "`snapferry manager restore delete` and create it again"
            ) from e
        return value

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
            fsync_dir(self.storage_data_path)

    def backup_in(self, dst: str) -> BackupName | None:
        """The backup under `dst` the mark names (by name or by a URL under dst), or None:
        retention keeps it until the restore (or a user) removes the mark."""
        value = self.get()
        if value is None:
            return None
        if "://" in value:
            root = dst.rstrip("/") + "/"
            if not value.startswith(root):
                return None  # another --dst's backup: not ours to keep or delete
            value = value[len(root):]
        try:
            return parse_backup_name(value)
        except UsageError:
            return None
