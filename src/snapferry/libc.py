"""The C library, for the calls Python's os module does not offer (fallocate, syncfs,
sync_file_range, mallopt): loaded once, with errno kept for the callers."""

from __future__ import annotations

import ctypes


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
