"""Directories opened below a root without following any symlink.

A restore checks its target before it writes, but a directory inside the target can be
swapped for a symlink while it runs (by anyone who may write there). Writes made by
path would then follow it out of the target. The restorer therefore makes and opens
each file's directory through descriptors: `open_dir` answers an O_PATH descriptor of
a directory below the root, refused (ELOOP, EXDEV, ENOTDIR) when any component is a
symlink; the file's own open, rename and unlink are then relative to it.
"""

from __future__ import annotations

import errno
import os

from . import libc

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_NO_LINKS = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS


def open_root(path: str) -> int:
    """The root itself may be reached through symlinks the user chose (it was resolved
    and checked before the restore began); below it none is followed."""
    return os.open(path, _DIR)


def open_dir(root_fd: int, rel: str) -> int:
    """An O_PATH descriptor of directory rel below root_fd ("" is the root itself)."""
    if not rel:
        return os.dup(root_fd)
    try:
        return libc.openat2(root_fd, rel, _DIR, 0, _NO_LINKS)  # one syscall for the whole path
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EPERM):  # kernels before 5.6, seccomp filters
            raise
    fd = os.dup(root_fd)
    for seg in rel.split("/"):
        fd = step(fd, seg)
    return fd


def make_dirs(root_fd: int, rel: str) -> int:
    """Directory rel below root_fd, each missing component made on the way (mkdirat), none
    followed as a symlink (os.makedirs would make them at a link's target); an O_PATH
    descriptor of it."""
    fd = os.dup(root_fd)
    for seg in rel.split("/"):
        try:
            os.mkdir(seg, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        except BaseException:
            os.close(fd)
            raise
        fd = step(fd, seg)
    return fd


def step(fd: int, name: str) -> int:
    """The directory name inside fd (a symlink there is ENOTDIR); fd is closed, also when
    this fails."""
    try:
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


def is_link_error(e: OSError) -> bool:
    """What open_dir and step raise when a component is a symlink or leads out."""
    return e.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR)
