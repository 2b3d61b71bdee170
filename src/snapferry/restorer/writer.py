"""The files writer: preallocated `.tmp` files, writes at offsets.

A `TargetFile` is opened by the first chunk that needs it, takes writes from
any thread (pwrite does not share a file offset), and tells the restore's
session (session.py, which owns the durability order) when a part and when the
whole file are written. Its byte path (bytepath.py) is fixed when it is made.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import threading
from collections.abc import Callable

from .. import directio
from ..checksums import region_crcs
from ..errors import BadBackupError, NoSpaceError, SnapferryError
from ..libc import LIBC
from ..names import JOURNAL_SUFFIX, TMP_SUFFIX
from ..parts import Part
from .bytepath import BytePath, choose_byte_path
from .journal import Journal
from .planner import FileMode, FilePlan
from .session import RestoreSession


def preallocate(fd: int, size: int, name: str) -> None:
    """Reserve the whole file now: fast sequential extents, and ENOSPC before any download."""
    if size == 0:
        return
    if LIBC.fallocate(fd, 0, 0, size) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.ENOSPC:
        raise NoSpaceError(f"no space left to preallocate {size} bytes for {name!r}; free space and rerun")
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        os.ftruncate(fd, size)  # filesystems without fallocate still get the right length
        return
    raise OSError(err, os.strerror(err), name)


def ensure_parent(
    root: str, rel: str, made: set[str] | None = None, created: Callable[[str], None] | None = None
) -> str:
    """Create the directories of rel below root as real directories; return the dir path.

    A symlink or file standing where a directory must be is removed (not followed),
    so nothing is ever written outside root. `made` remembers directories already
    checked in this run, so each is looked at once, not once per file. `created` is
    told of every directory whose entries changed (the parent of each new one).
    """
    parent_rel = rel.rsplit("/", 1)[0] if "/" in rel else ""
    if made is not None and parent_rel in made:
        return os.path.join(root, parent_rel) if parent_rel else root
    d = root
    sub = ""
    for seg in parent_rel.split("/") if parent_rel else ():
        d = os.path.join(d, seg)
        sub = f"{sub}/{seg}" if sub else seg
        if made is not None and sub in made:
            continue  # made or checked already: no mkdir and no two stats for every new directory
        try:
            os.mkdir(d, 0o755)
            if created is not None:
                created(os.path.dirname(d))
        except FileExistsError:
            # One lstat: a symlink is not a directory here (workers race to make the same one).
            if not stat.S_ISDIR(os.lstat(d).st_mode):
                os.unlink(d)
                os.mkdir(d, 0o755)
                if created is not None:
                    created(os.path.dirname(d))
        if made is not None:
            made.add(sub)
    return d


def io_error(e: OSError, name: str) -> SnapferryError:
    if e.errno == errno.ENOSPC:
        return NoSpaceError(f"no space left on the device while writing {name!r}; free space and rerun")
    return SnapferryError(f"cannot write {name!r}: {e.strerror}")


class TargetFile:
    # One is alive per file in flight, and thousands are made per second on small files.
    __slots__ = (
        "_checked", "_dirs_made", "_expected", "_fallback", "_left", "_left_total", "_lock", "_opened",
        "_session", "_verified", "batch", "byte_path", "dfd", "fd", "final", "finished", "inplace",
        "journal", "plan", "root", "tmp",
    )

    def __init__(
        self,
        root: str,
        plan: FilePlan,
        session: RestoreSession,
        byte_path: BytePath,
        expected: dict[str, list[int]] | None = None,
        dirs_made: set[str] | None = None,
        zero_copy: bool = True,
        checked: bool = False,
        batch: bool = False,
    ) -> None:
        """`batch`: a small single-part file written without preallocation and made durable
        with the session's batch (session.py), finished by the thread that wrote its last byte."""
        self.root = root
        self.plan = plan
        self.final = os.path.join(root, plan.path)
        self.inplace = plan.mode is FileMode.INPLACE
        self.tmp = self.final if self.inplace else self.final + TMP_SUFFIX
        self.fd = -1
        # A second descriptor with O_DIRECT, for the aligned blocks; -1 when not used.
        self.dfd = -1
        self.byte_path = byte_path
        self.batch = batch
        # What the byte path falls back to when the filesystem refuses O_DIRECT.
        self._fallback = choose_byte_path(plan.file_size, 0, zero_copy, checked)
        self._lock = threading.Lock()
        self._opened = False
        self._left = {p.offset: p.size for p in plan.parts}
        self._left_total = sum(p.size for p in plan.parts)
        self.journal: Journal | None = None
        self._session = session
        # Shared by all files of the run; set.add/in are atomic under the GIL and a
        # directory checked twice by a race is harmless.
        self._dirs_made = dirs_made
        self.finished = False
        # CRC32s per part name to check by reading the file back before the rename (restore --verify).
        self._expected = expected
        self._checked: dict[int, int] = {}  # bytes checked in memory, by part offset
        self._verified: set[int] = set()  # offsets of the parts whose every byte was checked

    def open(self) -> None:
        with self._lock:
            if self._opened:
                return
            try:
                self._session.dir_changed(
                    ensure_parent(self.root, self.plan.path, self._dirs_made, self._session.dir_changed)
                )
                if self.plan.mode is FileMode.RESUME:
                    self.fd = os.open(self.tmp, os.O_RDWR | os.O_CLOEXEC)
                    self.journal = Journal.reopen(self.final + JOURNAL_SUFFIX)
                elif self.inplace:
                    if os.path.islink(self.final):
                        os.unlink(self.final)
                    if not self.plan.has_journal:
                        # Marks the file as ours before its first byte, so a rerun may trust its length.
                        Journal.create(self.final + JOURNAL_SUFFIX, self.plan.file_size).close()
                    self.fd = os.open(self.final, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    os.ftruncate(self.fd, self.plan.truncate_to)
                else:
                    self.fd = os.open(
                        self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
                    )
                    if not self.batch:  # a few KiB gain nothing from it but a syscall
                        preallocate(self.fd, self.plan.file_size, self.plan.path)
                    if self.plan.has_journal:
                        self.journal = Journal.create(self.final + JOURNAL_SUFFIX, self.plan.file_size)
                if self.byte_path is BytePath.DIRECT:
                    self.dfd = directio.open_direct(self.tmp, os.O_WRONLY)
                    if self.dfd < 0:
                        self.byte_path = self._fallback
            except BaseException as e:
                # Nothing half-open stays behind (an ENOSPC from preallocate would leak the
                # descriptor on every retry and keep the filesystem busy).
                self._close_after_failed_open()
                if isinstance(e, OSError):
                    raise io_error(e, self.plan.path) from e
                raise
            self._opened = True

    def _close_after_failed_open(self) -> None:
        self._close_direct()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
        journal, self.journal = self.journal, None
        if journal is not None:
            journal.close()

    @property
    def direct(self) -> bool:
        return self.byte_path is BytePath.DIRECT

    def pwrite(self, data: memoryview, offset: int) -> None:
        """Write data at offset in the file (any thread)."""
        if not directio.pwrite(self.dfd if self.direct else -1, self.fd, data, offset):
            # Refused once (an unaligned buffer, a device with bigger blocks): the page cache
            # from now on. dfd stays open until finish/abandon, as other writers may hold it.
            self.byte_path = self._fallback

    def _close_direct(self) -> None:
        dfd, self.dfd = self.dfd, -1
        if dfd >= 0:
            os.close(dfd)

    def wrote(self, part: Part, n: int) -> bool:
        """Count n bytes of part as written; True when this finished the whole file."""
        with self._lock:
            left = self._left[part.offset] - n
            self._left[part.offset] = left
            self._left_total -= n
            file_done = self._left_total == 0
            if left == 0 and not file_done:
                # Under the lock, so the thread that finishes the file cannot close
                # the journal while this record is being written.
                self._session.part_written(self, part)
        return file_done

    def rewind(self, part: Part, n: int) -> None:
        """Take back n written bytes of part: they failed their checksum and come again."""
        with self._lock:
            self._left[part.offset] += n
            self._left_total += n

    def checked(self, part: Part, n: int) -> None:
        """n more bytes of part matched the manifest in memory."""
        with self._lock:
            got = self._checked.get(part.offset, 0) + n
            self._checked[part.offset] = got
            if got >= part.size:
                self._verified.add(part.offset)

    @property
    def verified_parts(self) -> int:
        return len(self._verified)

    def release_fds(self) -> int:
        """Close the direct descriptor and hand over the ordinary one (for the session's fsync)."""
        self._close_direct()
        fd, self.fd = self.fd, -1
        return fd

    def finish(self) -> None:
        """Verify (when asked), then the session's end of a file (fsync, rename, journal gone)."""
        if self._expected is not None:
            self._verify(self._expected)
        try:
            if self.batch:
                self._session.batch_file_written(self)
            else:
                self._session.file_written(self)
        except OSError as e:
            raise io_error(e, self.plan.path) from e
        self.finished = True

    def _verify(self, expected: dict[str, list[int]]) -> None:
        for p in self.plan.all_parts:
            want = expected.get(p.name)
            if want is None:
                continue
            if region_crcs(self.fd, p.offset, p.size) != want:
                # The bytes are wrong, so they must not survive for a resume either.
                self.abandon()
                for leftover in (self.tmp, self.final + JOURNAL_SUFFIX):
                    if not self.inplace or leftover != self.tmp:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(leftover)
                if self.inplace:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.final)
                raise BadBackupError(
                    f"the restored bytes of {p.name} do not match the backup's checksum: the backup or the "
                    "download is corrupt; rerun the restore, and if it fails again make a new backup"
                )
            self._verified.add(p.offset)

    def abandon(self) -> None:
        """Close without finishing: the .tmp and its journal stay for a resume."""
        self._close_direct()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.journal is not None:
            self.journal.close()
