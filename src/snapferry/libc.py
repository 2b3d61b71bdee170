"""The C library, for the calls Python's os module does not offer (fallocate, syncfs,
sync_file_range, mallopt): loaded once, with errno kept for the callers."""

from __future__ import annotations

import ctypes
import os


def _load() -> ctypes.CDLL:
    # glibc's soname first: ctypes.util (subprocess, tempfile, shutil...) and the
    # `ldconfig -p` that find_library runs cost every command's start-up more than
    # the rest of this module; other C libraries are still found the long way.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so", use_errno=True)


LIBC = _load()
LIBC.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
LIBC.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)


# openat2(2) (Linux 5.6): the same syscall number on every architecture.
_SYS_OPENAT2 = 437
RESOLVE_BENEATH = 0x08  # every component must stay below dirfd: no "..", no absolute symlinks
RESOLVE_NO_SYMLINKS = 0x04  # no component may be a symlink at all


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """A file descriptor of path below dirfd; OSError as os.open raises it (EXDEV when the
    path leaves dirfd, ENOSYS on older kernels), and ValueError for an embedded NUL as
    os.open does (C would open the name cut there)."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"embedded null byte in {path!r}")
    how = _OpenHow(flags, mode, resolve)
    fd = int(LIBC.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dirfd), raw,
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd
