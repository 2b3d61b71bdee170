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

from .. import beneath, directio
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
    root_fd: int, root: str, rel: str, made: set[str] | None = None,
    created: Callable[[str], None] | None = None,
) -> tuple[str, int]:
    """Create the directories of rel below root as real directories; return the directory's
    path and an O_PATH descriptor of it (the caller closes it).

    A symlink or file standing where a directory must be is removed (not followed), so
    nothing is ever written outside root; every step is taken through descriptors, so a
    directory swapped for a symlink while the restore runs is refused, not followed
    (beneath.py). `made` remembers directories already checked in this run, so each is
    made once, not once per file. `created` is told of every directory whose entries
    changed (the parent of each new one).
    """
    parent_rel = rel.rsplit("/", 1)[0] if "/" in rel else ""
    path = os.path.join(root, parent_rel) if parent_rel else root
    if made is not None and parent_rel in made:
        return path, beneath.open_dir(root_fd, parent_rel)
    fd = os.dup(root_fd)
    d = root
    sub = ""
    try:
        for seg in parent_rel.split("/") if parent_rel else ():
            d = os.path.join(d, seg)
            sub = f"{sub}/{seg}" if sub else seg
            if made is None or sub not in made:
                try:
                    os.mkdir(seg, 0o755, dir_fd=fd)
                    if created is not None:
                        created(os.path.dirname(d))
                except FileExistsError:
                    # One lstat: a symlink is not a directory here (workers race to make the same one).
                    if not stat.S_ISDIR(os.lstat(seg, dir_fd=fd).st_mode):
                        os.unlink(seg, dir_fd=fd)
                        os.mkdir(seg, 0o755, dir_fd=fd)
                        if created is not None:
                            created(os.path.dirname(d))
                if made is not None:
                    made.add(sub)
            parent, fd = fd, -1
            fd = beneath.step(parent, seg)  # closes the parent's descriptor, also when it fails
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    return d, fd


def io_error(e: OSError, name: str) -> SnapferryError:
    if beneath.is_link_error(e):
        return SnapferryError(
            f"a directory on the way to {name!r} in the target was replaced by a symlink while the restore "
            "ran, so nothing was written through it; find what else writes to the target, stop it, and rerun"
        )
    if e.errno == errno.ENOSPC:
        return NoSpaceError(f"no space left on the device while writing {name!r}; free space and rerun")
    if e.errno == errno.ENAMETOOLONG:  # a name from the store no Linux filesystem can hold
        return SnapferryError(
            f"cannot write {name!r}: the target filesystem refuses the name (ENAMETOOLONG: a path segment "
            "over 255 bytes); delete that object from the backup, or restore to a filesystem that accepts it"
        )
    return SnapferryError(f"cannot write {name!r}: {e.strerror}")


class TargetFile:
    # One is alive per file in flight, and thousands are made per second on small files.
    __slots__ = (
        "_checked", "_dirs_made", "_expected", "_fallback", "_left", "_left_total", "_lock", "_opened",
        "_session", "_verified", "batch", "byte_path", "dfd", "fd", "final", "finished", "inplace",
        "journal", "journal_name", "name", "pfd", "plan", "root", "tmp", "tmp_name",
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
        # Names inside the file's directory, used through pfd (beneath.py): never a path
        # that a directory swapped for a symlink could lead out of the target.
        self.name = os.path.basename(plan.path)
        self.tmp_name = os.path.basename(self.tmp)
        self.journal_name = self.name + JOURNAL_SUFFIX
        self.pfd = -1  # an O_PATH descriptor of the file's directory (dir_fd)
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
                d, self.pfd = ensure_parent(
                    self._session.root_fd, self.root, self.plan.path, self._dirs_made, self._session.dir_changed
                )
                self._session.dir_changed(d)
                pfd = self.pfd
                if self.plan.mode is FileMode.RESUME:
                    self.fd = os.open(self.tmp_name, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=pfd)
                    self.journal = Journal.reopen(self.journal_name, pfd)
                elif self.inplace:
                    with contextlib.suppress(FileNotFoundError):
                        if stat.S_ISLNK(os.lstat(self.name, dir_fd=pfd).st_mode):
                            os.unlink(self.name, dir_fd=pfd)
                    if not self.plan.has_journal:
                        # Marks the file as ours before its first byte, so a rerun may trust its length.
                        Journal.create(self.journal_name, self.plan.file_size, pfd).close()
                    self.fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
                                      dir_fd=pfd)
                    os.ftruncate(self.fd, self.plan.truncate_to)
                else:
                    self.fd = os.open(
                        self.tmp_name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
                        dir_fd=pfd,
                    )
                    if not self.batch:  # a few KiB gain nothing from it but a syscall
                        preallocate(self.fd, self.plan.file_size, self.plan.path)
                    if self.plan.has_journal:
                        self.journal = Journal.create(self.journal_name, self.plan.file_size, pfd)
                if self.byte_path is BytePath.DIRECT:
                    self.dfd = directio.open_direct(self.tmp_name, os.O_WRONLY, pfd)
                    if self.dfd < 0:
                        self.byte_path = self._fallback
                if not self.batch:
                    # A file waiting for its fsync holds descriptors (finisher backlog): its
                    # directory is opened again when it is renamed.
                    self.close_parent()
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
        self.close_parent()

    def dir_fd(self) -> int:
        """The O_PATH descriptor of the file's directory, opened again below the root if
        it was let go (a swap since then is refused, see beneath.py)."""
        if self.pfd < 0:
            parent_rel = self.plan.path.rsplit("/", 1)[0] if "/" in self.plan.path else ""
            self.pfd = beneath.open_dir(self._session.root_fd, parent_rel)
        return self.pfd

    def close_parent(self) -> None:
        pfd, self.pfd = self.pfd, -1
        if pfd >= 0:
            os.close(pfd)

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
        finally:
            self.close_parent()
        self.finished = True

    def _verify(self, expected: dict[str, list[int]]) -> None:
        for p in self.plan.all_parts:
            want = expected.get(p.name)
            if want is None:
                continue
            if region_crcs(self.fd, p.offset, p.size) != want:
                # The bytes are wrong, so they must not survive for a resume either
                # (in place, the file itself is the leftover).
                for leftover in {self.tmp_name, self.journal_name}:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover, dir_fd=self.dir_fd())
                self.abandon()
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
        self.close_parent()
