"""Big reads of local files with O_DIRECT (remotes/_fsio.FileRangeReader, and the object
stores' uploads of a local part through it): the bytes at any offset and length, a caller's
buffer the kernel refuses, and the page cache left alone (a restore's and a backup's big
reads no longer fill it, so the database's cache is not evicted)."""

from __future__ import annotations

import ctypes
import mmap
import os
import random
from pathlib import Path

from snapferry import checksums, directio
from snapferry.parts import Part
from snapferry.remotes._fsio import FileRangeReader, NoBody
from snapferry.remotes._transfer import ChunkSource
from snapferry.remotes.base import LocalRegion

MiB = 1024 * 1024


def _file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "part.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # out of the page cache
    finally:
        os.close(fd)
    return path, data


def _reader(path: Path, offset: int, length: int) -> FileRangeReader:
    return FileRangeReader(os.open(path, os.O_RDONLY), offset, length)


def _cached_pages(path: Path) -> int:
    """How many pages of the file are in the page cache: mincore(2) over a private mapping
    of it (mapped, never touched, so nothing is read in by asking)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        c = ctypes.c_char.from_buffer(m)
        address = ctypes.addressof(c)
        del c
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
    finally:
        m.close()
    return sum(v & 1 for v in vec)


def test_views_hand_out_every_range_exactly(tmp_path: Path) -> None:
    size = 5 * MiB + 1234  # the end is not on a block
    path, data = _file(tmp_path, size)
    rnd = random.Random(7)
    for _ in range(40):
        offset = rnd.randrange(size)
        length = rnd.randrange(1, size - offset + 1)
        r = _reader(path, offset, length)
        try:
            got = bytearray()
            while len(got) < length:
                piece = r.view(rnd.choice([1, 100, 4096, MiB, 3 * MiB + 17]))
                assert piece, "a view ended before the range"
                got += piece
            assert bytes(got) == data[offset : offset + length]
            assert not r.view(10)  # the range is over
        finally:
            r.close()


def test_a_view_past_the_end_of_the_file_is_short(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 2 * MiB + 10)
    r = _reader(path, MiB + 3, 2 * MiB)  # the range claims more than the file holds
    try:
        assert bytes(r.view(2 * MiB)) == data[MiB + 3 :]
    finally:
        r.close()


def test_readinto_a_buffer_the_kernel_refuses_for_direct_io_still_gets_the_bytes(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 6 * MiB)
    r = _reader(path, 0, 6 * MiB)
    buf = bytearray(6 * MiB + 1)
    try:
        with memoryview(buf) as mv:
            got = 0
            while got < 6 * MiB:
                n = r.readinto(mv[1 + got : 1 + got + 2 * MiB])  # one byte off any alignment
                assert n
                got += n
        assert bytes(buf[1:]) == data
    finally:
        r.close()


def test_big_reads_into_aligned_buffers_leave_the_page_cache_alone(tmp_path: Path) -> None:
    """What a restore's pool blocks and a backup's direct buffers are: page-aligned mmaps."""
    path, data = _file(tmp_path, 8 * MiB)
    assert _cached_pages(path) == 0
    r = _reader(path, 0, 8 * MiB)
    buf = directio.buffer(4 * MiB)
    got = bytearray()
    try:
        with memoryview(buf) as mv:
            while n := r.readinto(mv):
                got += mv[:n]
    finally:
        r.close()
        buf.close()
    assert bytes(got) == data
    assert _cached_pages(path) == 0
    # The same reads through the page cache (what they were) fill it: the check can fail.
    with open(path, "rb") as f:
        assert f.read() == data
    assert _cached_pages(path) == 8 * MiB // mmap.PAGESIZE


def test_views_leave_the_page_cache_alone(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 4 * MiB + 100)
    r = _reader(path, 24, 4 * MiB + 76)  # an encrypted part's chunks start after its 24-byte header
    try:
        assert bytes(r.view(2 * MiB)) == data[24 : 24 + 2 * MiB]
        assert bytes(r.view(4 * MiB)) == data[24 + 2 * MiB :]
    finally:
        r.close()
    assert _cached_pages(path) <= 1  # at most the last, partial block (read through the cache)


# --- an object store's upload of a local part (remotes/_transfer.ChunkSource) -------------


def _chunk_source(path: Path, offset: int, size: int) -> ChunkSource:
    part = Part("data/big/2026_11/17A3F0C2D1E50050/values.bin", offset + size, offset, size, size)
    return ChunkSource(part, NoBody(size), LocalRegion(str(path), offset, size), "test upload")


def test_an_upload_reads_big_chunks_of_a_local_part_exactly_and_around_the_page_cache(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 9 * MiB + 20_000)
    offset, size = 4096 * 3 + 5, 9 * MiB  # an offset off every block: the reads are widened
    with _chunk_source(path, offset, size) as src:
        got = bytearray()
        for chunk in src.chunks(3 * MiB - 5, reuse=True):  # three big chunks and one of 15 bytes
            got += chunk
        assert bytes(got) == data[offset : offset + size]
        crcs = src.crcs
    assert _cached_pages(path) <= 3  # the 15 bytes (a small read) and the blocks at both ends, at most
    want = checksums.BlockCrcs()
    want.update(data[offset : offset + size])
    assert crcs == want.result()


def test_an_upload_retried_from_an_earlier_byte_reads_it_again(tmp_path: Path) -> None:
    """A retry seeks the source back (ChunkSource.pos): the direct reader starts over there."""
    path, data = _file(tmp_path, 6 * MiB)
    with _chunk_source(path, 0, 6 * MiB) as src:
        first = bytes(src.read_reused(2 * MiB))
        bytes(src.read_reused(2 * MiB))
        src.pos = 0
        assert bytes(src.read_reused(2 * MiB)) == first == data[: 2 * MiB]
        src.pos = 5 * MiB
        assert bytes(src.read_reused(MiB)) == data[5 * MiB :]
