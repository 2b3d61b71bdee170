"""The one owner of a restore's durability: the marker, the directories to sync, the per-file order.

Every step that makes restored bytes survive a crash is taken here, in this order,
and nowhere else (the docs/crash-safety.md describes the promises it keeps):

1. `begin`: `restore-in-progress` is created and fsynced and the target directory
   fsynced, before anything in the target changes; a database refuses to start
   while it is there.
2. `deleted`: files the backup lacks are unlinked; their directories join the set
   still to sync.
3. Per file, preallocated (`FileMode.NEW`/`RESUME`): the data goes to `<file>.tmp`
   (preallocated when new); for a multi-part file, each finished part is made
   durable by `part_written`: data fdatasync'ed, then the record appended to
   `<file>.tmp.journal` and fdatasync'ed. When the last byte is written,
   `file_written`: the `.tmp` fsynced, renamed to its final name, the journal
   removed, and the directory joins the set still to sync.
4. Per file, in place (`FileMode.INPLACE`): the journal is created before the
   first byte (it marks the file as ours, so a rerun may trust its length), each
   finished part fdatasync'ed before the next is written (`part_written`), then
   `file_written`: the file fsynced and the journal removed.
5. Per small file, batched (single part, at most `planner.BATCH_FILE_MAX`, not
   written direct): written to `<file>.tmp` without preallocation or journal, closed
   and renamed at once by `batch_file_written`, with no fsync of its own. Its bytes
   and its rename become durable in `end`, with every other batched file, by one
   syncfs. Until then only the marker vouches for it: a rerun that finds the
   marker fetches every such file again (planner.py), whatever its length.
6. `end`: when files were batched, one syncfs per filesystem the restore changed (every
   batched file's data and inode, every rename, unlink and new directory; a filesystem
   mounted inside the target is not the target's, so each gets its own);
   otherwise every directory in the set fsynced, deepest first, so every rename
   and unlink is durable. Then the marker unlinked and the target directory
   fsynced: the marker goes last.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from .. import beneath, durable
from ..names import RESTORE_IN_PROGRESS_FILE
from ..parts import Part

if TYPE_CHECKING:
    from .writer import TargetFile


class RestoreSession:
    """Durability of one restore into root; thread safe for the per-file steps."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.marker = os.path.join(root, RESTORE_IN_PROGRESS_FILE)
        self._dirs: set[str] = {root}  # directories whose entries changed and are not synced yet
        self._lock = threading.Lock()
        self.batched = 0  # files made durable by the syncfs in `end`
        self._root_fd = -1

    @property
    def root_fd(self) -> int:
        """An O_PATH descriptor of the root: every file's directory is opened below it
        (beneath.py), so a directory swapped for a symlink mid-run is never followed."""
        if self._root_fd < 0:
            with self._lock:
                if self._root_fd < 0:
                    self._root_fd = beneath.open_root(self.root)
        return self._root_fd

    def close(self) -> None:
        """Let go of the root's descriptor (`end` does; a failed restore calls this)."""
        with self._lock:
            fd, self._root_fd = self._root_fd, -1
        if fd >= 0:
            os.close(fd)

    # -- 1 and 2 -------------------------------------------------------------------
    def begin(self) -> None:
        """From here on the target changes: a database must not start on it until `end`."""
        with open(self.marker, "wb") as mf:
            os.fsync(mf.fileno())
        durable.fsync_dir(self.root)

    def deleted(self, path: str) -> None:
        """path (absolute, below root) was unlinked: its directories must be synced."""
        d = os.path.dirname(path)
        with self._lock:
            while len(d) > len(self.root):
                self._dirs.add(d)
                d = os.path.dirname(d)

    def dir_changed(self, d: str) -> None:
        with self._lock:
            self._dirs.add(d)

    @property
    def dirs_to_sync(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._dirs)

    # -- 3 and 4 -------------------------------------------------------------------
    def part_written(self, tf: TargetFile, part: Part) -> None:
        """A part of a file that is not finished yet is whole: make it count for a resume."""
        journal = tf.journal
        if journal is not None:
            os.fdatasync(tf.fd)  # the bytes first, then the record that promises them
            journal.record(part.offset, part.size)
        elif tf.inplace:
            # In place the file's length is the resume point: the part must be on disk first.
            os.fdatasync(tf.fd)

    def file_written(self, tf: TargetFile) -> None:
        """Every byte of the file is written (and checked): fsync, rename, journal gone."""
        fd = tf.release_fds()
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not tf.inplace:
            os.rename(tf.tmp_name, tf.name, src_dir_fd=tf.dir_fd(), dst_dir_fd=tf.dir_fd())
        journal = tf.journal
        if journal is not None:
            journal.close()
        if journal is not None or tf.inplace:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tf.journal_name, dir_fd=tf.dir_fd())
        self.dir_changed(os.path.dirname(tf.final))

    def batch_file_written(self, tf: TargetFile) -> None:
        """A batched file is whole: renamed now, made durable by `end`'s syncfs."""
        os.close(tf.release_fds())
        os.rename(tf.tmp_name, tf.name, src_dir_fd=tf.dir_fd(), dst_dir_fd=tf.dir_fd())
        with self._lock:
            self.batched += 1

    def _filesystems(self) -> list[str]:
        """One changed directory per filesystem, the root's first. Every directory a file
        was written to or deleted from is in the set; a directory the restore made lies on
        its parent's filesystem, so the set's devices are every filesystem changed."""
        first: dict[int, str] = {}
        for d in sorted(self.dirs_to_sync, key=len):
            try:
                first.setdefault(os.stat(d).st_dev, d)
            except FileNotFoundError:
                continue  # emptied and pruned: its parent is in the set too
        return list(first.values())

    # -- 6 ---------------------------------------------------------------------------
    def end(self) -> None:
        """Every byte, rename and unlink durable, then the marker removed, durably."""
        if self.batched:
            # syncfs writes back every dirty inode of the filesystem and commits its
            # journal: the batched files and every directory entry, in one call each.
            for path in self._filesystems():
                durable.syncfs(path)
        else:
            for d in sorted(self.dirs_to_sync, key=len, reverse=True):
                if os.path.isdir(d):
                    durable.fsync_dir(d)
        os.unlink(self.marker)
        durable.fsync_dir(self.root)
        self.close()
