"""The one owner of a backup's commit protocol, for backup and copy (the manager copies too).

A backup location is complete exactly when it holds `backup_complete.ignore`;
vmrestore, `snapferry restore` and the manager's catalog trust that marker alone.
Every step that changes what the marker vouches for is taken here, in this order,
and nowhere else (docs/crash-safety.md describes the promises it keeps):

1. enter: refuse a destination inside another backup, then take the lease
   (`snapferry_lock.ignore`, lease.py). One writer per location from here on; a
   refusal before this point leaves the destination as it was.
2. `begin`: the lease is read back, then the marker deleted (an encrypted
   backup's marker too, which a plain run over it replaces). The action has
   listed and checked everything before calling it, so a refused run (nested
   backups, a source of markers only, a locked backup) never unmarks a good one.
   From here on the location is incomplete until step 5.
3. `delete_stale`: parts the source lacks are deleted (fs:// prunes the empty
   directories they leave); the action then uploads or copies the rest.
4. `commit`, after every transfer returned: the lease read back (a writer taken
   over while it paused must not overwrite the new writer's files), then the
   manifest and the metadata written (or deleted when the source has none, as a
   copy of a vmbackup 1.79.5 backup), then fs:// synced (parts were written with
   no fsync each: one syncfs makes them and every rename durable; object stores
   are durable once a PUT returns),
5. then the lease read back once more, and the marker written last. A marker
   therefore means every part, the manifest and the metadata are durable and
   that this writer held the lease throughout.

Nothing is done on failure: leaving the session without `commit` writes no
marker, so the location stays incomplete and a rerun resumes from its listing.
The lease is released on every way out.
"""

from __future__ import annotations

import enum
import threading
from types import TracebackType
from typing import Literal

from ..lease import BackupLease
from ..names import ENCRYPTED_COMPLETE_FILE, ENCRYPTION_RECORD_FILE, MANIFEST_FILE
from ..parts import BACKUP_COMPLETE_FILE, BACKUP_METADATA_FILE, Part
from ..remotes.base import Remote, innermost, local_tree
from ..workers import parallel
from .nesting import refuse_dst_inside_a_backup


class Stored(enum.Enum):
    """A file `commit` leaves as the destination holds it (a backup whose manifest did not change)."""

    KEEP = "keep"


KEEP: Literal[Stored.KEEP] = Stored.KEEP
Content = bytes | None | Literal[Stored.KEEP]  # None: delete it at the destination


class BackupSession:
    """One writer's commit protocol on one backup location: a context manager.

    `stop` is the action's transfers' stop event: set when the lease is found taken
    over, so uploads in flight end promptly instead of running to their ends."""

    def __init__(self, dst: Remote, what: str, lease_ttl: float | None = None) -> None:
        self.dst = dst
        self.stop = threading.Event()
        self._what = what
        self._lease_ttl = lease_ttl
        self._lease: BackupLease | None = None

    @property
    def lease(self) -> BackupLease:
        if self._lease is None:
            raise RuntimeError("BackupSession used outside its `with` block")
        return self._lease

    def __enter__(self) -> BackupSession:
        refuse_dst_inside_a_backup(self.dst)
        lease = BackupLease(self.dst, self._what, self._lease_ttl, on_lost=self.stop)
        lease.__enter__()
        self._lease = lease
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.__exit__(exc_type, exc, tb)

    def check(self) -> None:
        """Raise LockedError unless this run still owns the lease (read from the lease object)."""
        self.lease.check()

    # -- 2 and 3 ---------------------------------------------------------------------
    def begin(self) -> None:
        """From here on the destination changes: it is unmarked until `commit`."""
        self.check()
        self.dst.delete_file(BACKUP_COMPLETE_FILE)
        # A plain backup or copy over an encrypted backup: that backup's marker goes too, and its
        # key record, else a keyed restore of the plain result is told to give a key (an encrypted
        # view keeps its own record: the delete is a no-op there).
        self.dst.delete_file(ENCRYPTED_COMPLETE_FILE)
        self.dst.delete_file(ENCRYPTION_RECORD_FILE)

    def delete_stale(self, parts: list[Part], concurrency: int) -> None:
        """Delete the destination's parts the source lacks, and on fs:// the directories they leave empty."""
        parallel(concurrency, parts, self.dst.delete_part)
        if parts and (tree := local_tree(innermost(self.dst))) is not None:
            tree.prune_empty_dirs()

    # -- 4 and 5 ---------------------------------------------------------------------
    def commit(self, manifest: Content, metadata: Content, marker: bytes = b"") -> None:
        """Every part is in place: manifest and metadata, sync, then the marker, each behind a lease check."""
        self.check()  # a writer whose lease was taken over must not overwrite the new one's files
        for name, content in ((MANIFEST_FILE, manifest), (BACKUP_METADATA_FILE, metadata)):
            if content is None:
                self.dst.delete_file(name)
            elif isinstance(content, bytes):
                self.dst.write_file(name, content)
        # innermost: an encrypted fs:// backup's files are as unsynced as a plain one's (the
        # wrapper is no local tree for reads, where its bytes are ciphertext, but is one here).
        if (tree := local_tree(innermost(self.dst))) is not None:
            tree.sync()  # fs:// parts were written without an fsync each
        self.check()
        # Written last, after every transfer returned: a marker means a whole backup.
        self.dst.write_file(BACKUP_COMPLETE_FILE, marker)
