"""Content checksums: the gap vmbackup leaves open (nothing verifies the bytes).

A backup gets `snapferry_checksums.ignore` beside its markers: for every part,
the CRC32 of each 16 MiB block from the part's start. vmbackup and vmrestore
ignore names ending in `.ignore`, so the layout stays theirs. `restore --verify`
re-reads each restored file before it is renamed into place and refuses any
block that does not match; parts without an entry (written by another tool)
are counted as unverified, never guessed.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable

from .parts import Part, always_transfer

MANIFEST_FILE = "snapferry_checksums.ignore"
BLOCK = 16 * 1024 * 1024
_READ = 1024 * 1024
_HEADER = "snapferry-checksums 1 crc32 16777216"


def region_crcs(fd: int, offset: int, size: int) -> list[int]:
    """CRC32 per BLOCK of fd[offset:offset+size], read 1 MiB at a time with a running CRC
    (zlib releases the GIL on big buffers, so several threads hash in parallel)."""
    out: list[int] = []
    buf = bytearray(min(_READ, max(size, 1)))
    mv = memoryview(buf)
    pos = 0
    while pos < size or (size == 0 and not out):
        block_end = min(pos + BLOCK, size)
        crc = 0
        while pos < block_end:
            n = os.preadv(fd, [mv[: min(len(buf), block_end - pos)]], offset + pos)
            if n == 0:
                raise OSError(f"unexpected end of file at byte {offset + pos}")
            crc = zlib.crc32(mv[:n], crc)
            pos += n
        out.append(crc)
    return out


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
