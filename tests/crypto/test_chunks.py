"""The chunk stream itself: the ciphertext an upload reads through readinto, whatever the
sizes of the buffers it is read into, opens back to the plaintext."""

from __future__ import annotations

import io
import os
import random
import zlib

from snapferry.checksums import BlockCrcs
from snapferry.crypto.chunks import CHUNK, HEADER, MAGIC, TAG, DecryptingReader, EncryptingBody, PartCipher, cipher_len
from snapferry.parts import Part
from snapferry.remotes._transfer import ChunkSource

KEY = os.urandom(32)
BACKUP_ID = os.urandom(16)


class _Plain:
    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(min(n, 70_000))  # a body may hand out less than asked


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def readinto(self, buf: memoryview) -> int:
        return self._f.readinto(buf[:100_003])

    def close(self) -> None:
        pass


def _cipher(size: int, salt: bytes) -> PartCipher:
    return PartCipher(KEY, BACKUP_ID, "data/f.bin/part", salt, size, CHUNK, "fs:///bk")


def _sealed(data: bytes, room: int) -> bytes:
    body = EncryptingBody(_Plain(data), lambda salt: _cipher(len(data), salt))
    out = bytearray()
    buf = bytearray(room)
    while n := body.readinto(memoryview(buf)):
        assert n <= room
        out += buf[:n]
    assert body.readinto(memoryview(buf)) == 0
    crcs = BlockCrcs()
    crcs.update(data)
    assert body.result() == crcs.result()  # the manifest's CRCs are of the plaintext
    body.close()
    return bytes(out)


def test_readinto_any_buffer_size_opens_back() -> None:
    for size in (0, 5, CHUNK, 3 * CHUNK + 5):
        data = random.Random(size).randbytes(size)
        for room in (1, 7, HEADER, CHUNK + TAG - 1, CHUNK + TAG, CHUNK + TAG + 1, 3 * (CHUNK + TAG) + HEADER,
                     4 * 1024 * 1024):
            blob = _sealed(data, room)
            assert len(blob) == cipher_len(size) and blob[: len(MAGIC)] == MAGIC, (size, room)
            reader = DecryptingReader(_Raw(blob[HEADER:]), _cipher(size, blob[len(MAGIC) : HEADER]), 0, size)
            got = bytearray(size)
            view = memoryview(got)
            at = 0
            while at < size:
                at += reader.readinto(view[at:])
            assert bytes(got) == data, (size, room)


def test_read_and_readinto_agree() -> None:
    data = random.Random(3).randbytes(2 * CHUNK + 11)
    body = EncryptingBody(_Plain(data), lambda salt: _cipher(len(data), salt))
    head = body.read(HEADER + 5)  # read() and readinto() mixed, as a backend may do
    buf = bytearray(CHUNK)
    n = body.readinto(memoryview(buf))
    rest = body.read()
    blob = head + bytes(buf[:n]) + rest
    assert len(blob) == cipher_len(len(data))
    reader = DecryptingReader(_Raw(blob[HEADER:]), _cipher(len(data), blob[len(MAGIC) : HEADER]), 0, len(data))
    got = bytearray(len(data))
    at = 0
    while at < len(data):
        at += reader.readinto(memoryview(got)[at:])
    assert bytes(got) == data


def test_object_store_chunks_are_sealed_into_one_reused_buffer() -> None:
    """An encrypted upload to s3/gcs/azure fills one buffer per part, reused for every upload
    chunk (the chunks used to be joined from 256 KiB pieces: twice the memory per chunk), and
    takes one CRC32 per chunk, not the manifest's two CRCs of the ciphertext."""
    data = random.Random(9).randbytes(5 * CHUNK + 77)
    body = EncryptingBody(_Plain(data), lambda salt: _cipher(len(data), salt))
    part = Part("data/f.bin", len(data), 0, body.size, body.size)
    out = bytearray()
    pieces = []  # kept alive: one object handed out again, or a new one per chunk
    with ChunkSource(part, body, None, "uploading") as src:
        for piece in src.chunks(CHUNK + 1000, reuse=True):
            pieces.append(piece)
            out += piece
            assert src.last_crc == zlib.crc32(piece)  # the store's checksum header: of the ciphertext
        assert src.crcs is None  # no manifest CRCs of ciphertext: the body takes the plaintext's
    assert len(pieces) == 5 and all(p is pieces[0] for p in pieces) and len(out) == body.size
    reader = DecryptingReader(_Raw(bytes(out[HEADER:])), _cipher(len(data), bytes(out[len(MAGIC) : HEADER])), 0,
                              len(data))
    got = bytearray(len(data))
    at = 0
    while at < len(data):
        at += reader.readinto(memoryview(got)[at:])
    assert bytes(got) == data
