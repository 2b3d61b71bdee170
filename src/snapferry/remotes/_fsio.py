"""fs:// byte movers: a ranged reader of a part's file, and the copies of a local region
into an upload's file (small parts in one read, big ones through O_DIRECT), each hashing
the bytes on the way so the manifest needs no second pass."""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable

from .. import directio
from ..checksums import BlockCrcs
from ..errors import unreadable_source
from .base import IntoBody, LocalRegion

_DIRECT_BUF = 4 * 1024 * 1024
# Reads of a part from this size go direct (FileRangeReader): a restore's 4 MiB blocks do, the
# small reads of headers and small files keep the page cache and its readahead.
DIRECT_READ_MIN = 1024 * 1024


class FileRangeReader:
    """Reads a byte range of a file without moving a shared offset (readinto), or lends
    the next bytes in place (view, the ViewReader capability)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._pos = offset
        self._left = length
        self._dfd = -2  # the O_DIRECT descriptor view() reads through (-2: not opened yet, -1: refused)
        self._buf: mmap.mmap | None = None
        self._mv = memoryview(b"")

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0:
            return 0
        want = buf[: min(len(buf), self._left)]
        direct = len(want) >= DIRECT_READ_MIN  # whole blocks direct (see view()); the rest on the next call
        if direct:
            want = want[: len(want) & ~(directio.ALIGN - 1)]
        n = self._pread(want, self._pos, direct)
        self._pos += n
        self._left -= n
        return n

    def view(self, n: int) -> memoryview:
        """The next n bytes of the range (fewer only at the file's end), read with O_DIRECT
        into a page-aligned buffer of this reader and lent as they are there.

        Why: an encrypted fs:// restore reads every ciphertext byte into the process to
        decrypt it. Through the page cache that was a readahead into freshly allocated pages
        and a copy out of them (_copy_to_iter alone was a sixth of the restore's CPU, by
        perf); a direct read lands by DMA where the decryption reads it. The range is widened
        to whole 4 KiB blocks for O_DIRECT; a filesystem that refuses it is read normally."""
        n = min(n, self._left)
        start = self._pos
        lead = start & (directio.ALIGN - 1)
        span = -(-(lead + n) // directio.ALIGN) * directio.ALIGN
        if self._buf is None or len(self._buf) < span:
            # Dropped, not closed: a view lent earlier may still be alive (the mapping goes
            # with the last reference).
            self._buf = directio.buffer(span)
            self._mv = memoryview(self._buf)
        got = 0
        while got < lead + n:
            k = self._pread(self._mv[got:span], start - lead + got, True)
            if not k:
                break
            got += k
        got = max(0, min(got - lead, n))
        self._pos += got
        self._left -= got
        return self._mv[lead : lead + got]

    def _pread(self, into: memoryview, at: int, direct: bool) -> int:
        """Read into `into` at `at`: with O_DIRECT when `direct` is asked, offset and length are whole blocks and
        neither the filesystem nor the buffer's address (a restore's pool blocks are aligned
        mmaps; only the kernel can tell, by EINVAL) refuses it, else through the page cache.
        A refusal holds for the rest of this reader."""
        if direct and self._dfd != -1 and at % directio.ALIGN == 0 and len(into) % directio.ALIGN == 0:
            if self._dfd == -2:
                try:
                    self._dfd = directio.open_direct(f"/proc/self/fd/{self._fd}", os.O_RDONLY)
                except OSError:
                    self._dfd = -1  # no /proc (a bare container): the descriptor we have serves
            if self._dfd >= 0:
                try:
                    return os.preadv(self._dfd, [into], at)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    os.close(self._dfd)
                    self._dfd = -1
        return os.preadv(self._fd, [into], at)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dfd >= 0:
            os.close(self._dfd)
            self._dfd = -1
        self._mv = memoryview(b"")
        self._buf = None  # not closed: see view()


class NoBody:
    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, n: int = -1) -> bytes:
        raise AssertionError("zero-copy upload reads no body")


def copy_small(
    local: LocalRegion, fd: int, size: int, progress: Callable[[int], None] | None
) -> tuple[int, list[int]]:
    """A part under _DIRECT_MIN: one read into memory, hashed there, one write.

    Fewer syscalls than copy_file_range followed by a second pass to hash the bytes (open,
    mmap, munmap, close), which is what a backup of many small files pays for per file."""
    sfd = _open_source(local.path)
    try:
        data = os.pread(sfd, size, local.offset)
    except OSError as e:
        raise unreadable_source(local.path, e) from e
    finally:
        os.close(sfd)
    crcs = BlockCrcs()
    crcs.update(data)
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
    if progress is not None:
        progress(len(data))
    return len(data), crcs.result()


def copy_direct(
    local: LocalRegion, fd: int, dfd: int, size: int, progress: Callable[[int], None] | None
) -> tuple[int, list[int]]:
    """Read the region through the page cache (readahead) into one aligned buffer and write
    it with O_DIRECT, hashing each block on the way: no page cache on the backup's side,
    and the checksum manifest needs no second pass over the bytes."""
    sfd = _open_source(local.path)
    crcs = BlockCrcs()
    done = 0
    buf = directio.buffer(min(_DIRECT_BUF, size))
    mv = memoryview(buf)
    src = FileRangeReader(sfd, local.offset, size)  # direct reads: see FileRangeReader.view
    try:
        while done < size:
            n = src.readinto(mv[: min(len(mv), size - done)])
            if n == 0:
                break
            crcs.update(mv[:n])
            if not directio.pwrite(dfd, fd, mv[:n], done):
                dfd = -1  # refused (a device with bigger blocks): the rest goes through fd
            done += n
            if progress is not None:
                progress(n)
    finally:
        src.close()
    # Closed only after success: a failed write's traceback still holds a slice of the
    # buffer, and closing it then raised BufferError in place of the error (ENOSPC).
    # On failure the buffer goes when the traceback does.
    mv.release()
    buf.close()
    return done, crcs.result()


def copy_body_direct(
    body: IntoBody, fd: int, dfd: int, size: int, progress: Callable[[int], None] | None
) -> int:
    """Write `size` bytes of a readinto body (an encrypted upload's ciphertext) from one
    aligned buffer the body fills in place, with O_DIRECT through dfd (-1: through fd), as
    copy_direct does for a file: no page cache filled and written back on the backup's side.

    Each round writes the filled buffer's whole ALIGN blocks and moves the rest (under 4 KiB)
    to its front, so every direct write starts aligned though the body hands out chunks of
    any length."""
    # A small part (no dfd) in a plain buffer: an mmap and munmap per file cost more than it.
    buf: mmap.mmap | bytearray = (directio.buffer(min(_DIRECT_BUF, -(-size // directio.ALIGN) * directio.ALIGN))
                                  if dfd >= 0 else bytearray(max(1, min(_DIRECT_BUF, size))))
    mv = memoryview(buf)
    done = have = 0  # bytes written; bytes in the buffer not yet written
    while done + have < size:
        n = body.readinto(mv[have : have + min(len(mv) - have, size - done - have)])
        if not n:
            break
        have += n
        k = have if done + have == size else have & ~(directio.ALIGN - 1)
        if k:
            if not directio.pwrite(dfd, fd, mv[:k], done):
                dfd = -1  # refused (a device with bigger blocks): the rest goes through fd
            done += k
            have -= k
            mv[:have] = mv[k : k + have]
            if progress is not None:
                progress(k)
    # Released only after success, as in copy_direct.
    mv.release()
    if isinstance(buf, mmap.mmap):
        buf.close()
    return done


def _open_source(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        # Not the destination's fault, and no retry will fix it.
        raise unreadable_source(path, e) from e
