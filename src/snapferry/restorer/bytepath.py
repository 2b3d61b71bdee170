"""The one place that decides how a file's bytes travel from the backup to the disk."""

from __future__ import annotations

from enum import Enum

from .. import directio


class BytePath(Enum):
    # In the kernel, where the source allows: copy_file_range from an fs:// part,
    # splice from a socket (remotes/s3/plainhttp.py); otherwise through the pool like BUFFERED.
    IN_KERNEL = "in-kernel"
    # Through the pool's page-aligned blocks with O_DIRECT (directio.py).
    DIRECT = "direct"
    # Through the pool into the page cache: every byte is checked against the manifest.
    BUFFERED = "buffered"


def choose_byte_path(file_size: int, direct_min: int, zero_copy: bool, checked: bool) -> BytePath:
    """Big files go direct (fs:// parts are then read into the pool too: on this project's
    machine a buffered read plus a direct write costs the CPU what the in-kernel copy
    does, and leaves no page cache to allocate and write back). Bytes checked in memory
    must pass through the pool, where their CRCs are taken. The rest is copied in the
    kernel when zero-copy is on.

    Whether the file is written in place or under `.tmp` (FileMode) is independent of
    this: in place only orders the writes (one worker, one part after the other)."""
    if directio.wanted(direct_min, file_size):
        return BytePath.DIRECT
    if zero_copy and not checked:
        return BytePath.IN_KERNEL
    return BytePath.BUFFERED
