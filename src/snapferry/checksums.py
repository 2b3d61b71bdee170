"""Content checksums: the gap vmbackup leaves open (nothing verifies the bytes).

A backup gets `snapferry_checksums.ignore` beside its markers: for every part,
the CRC32 of each 16 MiB block from the part's start. vmbackup and vmrestore
ignore names ending in `.ignore`, so the layout stays theirs. `restore --verify`
re-reads each restored file before it is renamed into place and refuses any
block that does not match; parts without an entry (written by another tool)
are counted as unverified, never guessed.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterable

from .parts import Part, always_transfer

MANIFEST_FILE = "snapferry_checksums.ignore"
BLOCK = 16 * 1024 * 1024
_HEADER = "snapferry-checksums 1 crc32 16777216"


def region_crcs(fd: int, offset: int, size: int) -> list[int]:
    """CRC32 per BLOCK of fd[offset:offset+size].

    The bytes are hashed where the page cache holds them (mmap), not copied into a
    buffer first: right after a backup wrote or read them, that is all the work left.
    One block is mapped at a time, so the mapped pages never add more than a block to
    the process's resident set. zlib releases the GIL on big buffers, so several
    threads hash in parallel.
    """
    if size == 0:
        return [0]
    if os.fstat(fd).st_size < offset + size:
        # Checked first: touching a mapping beyond the end of its file is a SIGBUS.
        raise OSError(f"unexpected end of file before byte {offset + size}")
    out: list[int] = []
    for pos in range(offset, offset + size, BLOCK):
        n = min(BLOCK, offset + size - pos)
        start = pos - pos % mmap.ALLOCATIONGRANULARITY
        skip = pos - start
        with mmap.mmap(fd, skip + n, prot=mmap.PROT_READ, offset=start) as m, memoryview(m) as mv:
            out.append(zlib.crc32(mv[skip:]))
    return out


class BlockCrcs:
    """CRC32 per BLOCK of a stream fed in order, in pieces of any size (an upload's chunks)."""

    def __init__(self) -> None:
        self._done: list[int] = []
        self._crc = 0
        self._fill = 0  # bytes of the current block so far

    def update(self, data: bytes | bytearray | memoryview) -> int | None:
        """Feed the next bytes; returns their CRC32 when they start a block and stay within it
        (an upload chunk of up to BLOCK bytes: its checksum header comes free)."""
        n = len(data)
        if self._fill == 0 and n <= BLOCK:
            crc = zlib.crc32(data)
            if n == BLOCK:
                self._done.append(crc)
            else:
                self._crc, self._fill = crc, n
            return crc
        with memoryview(data) as mv:
            pos = 0
            while pos < n:
                take = min(BLOCK - self._fill, n - pos)
                self._crc = zlib.crc32(mv[pos : pos + take], self._crc)
                self._fill += take
                pos += take
                if self._fill == BLOCK:
                    self._done.append(self._crc)
                    self._crc = self._fill = 0
        return None

    def result(self) -> list[int]:
        """The CRCs so far, a last partial block included (an empty stream is one empty block)."""
        if self._fill or not self._done:
            return [*self._done, self._crc]
        return list(self._done)


def file_crcs(path: str, offset: int, size: int) -> list[int]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return region_crcs(fd, offset, size)
    finally:
        os.close(fd)


def encode(entries: dict[str, list[int]]) -> bytes:
    lines = [_HEADER]
    lines.extend(f"{name}\t{','.join(f'{c:08x}' for c in crcs)}" for name, crcs in sorted(entries.items()))
    return ("\n".join(lines) + "\n").encode()


def decode(data: bytes) -> dict[str, list[int]] | None:
    """Entries by part name, or None for a manifest this version does not understand."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if not lines or lines[0] != _HEADER:
        return None
    out: dict[str, list[int]] = {}
    for line in lines[1:]:
        name, sep, crcs = line.rpartition("\t")
        if not sep:
            continue
        try:
            out[name] = [int(c, 16) for c in crcs.split(",")]
        except ValueError:
            continue
    return out


def verifiable(parts: Iterable[Part], manifest: dict[str, list[int]]) -> dict[str, list[int]]:
    """The entries a restore can check: files that change without changing size are left out."""
    return {p.name: manifest[p.name] for p in parts if p.name in manifest and not always_transfer(p.path)}
