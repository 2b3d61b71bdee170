"""Direct I/O (O_DIRECT): bytes go between the disk and our reused buffers by DMA.

Why: a restore that writes through the page cache spends most of its CPU in the
kernel copying every byte into freshly allocated page-cache pages (perf on this
project's machine: `copy_folio_from_iter_atomic` 64 % of all samples of an fs://
restore), and the later writeback touches them again. Direct writes from the
same few page-aligned buffers skip the copy, the allocation and the writeback,
and leave the database's page cache alone.

O_DIRECT needs the file offset, the length and the buffer address aligned to the
device's logical block; ALIGN (4 KiB) covers every common device. Whatever is not
aligned (the last partial block of a file, a short read) goes through the page
cache on a second, ordinary descriptor of the same file: the kernel keeps the
two coherent. Filesystems that refuse O_DIRECT (tmpfs on old kernels, some FUSE
mounts) get -1 from `open_direct` and are written through the page cache.
"""

from __future__ import annotations

import errno
import mmap
import os

ALIGN = 4096
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)


def wanted(min_size: int, size: int) -> bool:
    """Whether a file of size bytes is written direct under a threshold of min_size (0 = never)."""
    return 0 < min_size <= size


def buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of size bytes (anonymous memory, as O_DIRECT needs)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def open_direct(path: str, flags: int, dir_fd: int | None = None) -> int:
    """path (relative to dir_fd when given) opened with O_DIRECT added to flags, or -1
    where the filesystem refuses it."""
    try:
        return os.open(path, flags | os.O_DIRECT | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _REFUSED:
            return -1
        raise


def pwrite(dfd: int, fd: int, data: memoryview, offset: int) -> bool:
    """Write all of data at offset: aligned blocks through dfd, the rest through fd.

    Returns False when the kernel refused a direct write (an unaligned buffer, or
    a device with larger blocks); the bytes are then written through fd and the
    caller should stop using dfd.
    """
    ok = True
    while data:
        body = len(data) & ~(ALIGN - 1)
        if ok and dfd >= 0 and body and offset % ALIGN == 0:
            try:
                n = os.pwrite(dfd, data[:body], offset)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                ok = False
                continue
        else:
            n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n
    return ok
