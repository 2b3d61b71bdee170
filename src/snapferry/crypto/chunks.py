"""The format of one encrypted part, and the streams that write and read it.

An encrypted part object is a 24-byte header (8 bytes of magic, a 16-byte random
salt) and then the part's plaintext cut into chunks of CHUNK bytes (the last one
shorter, an empty part one empty chunk), each sealed by AES-256-GCM with its 16-byte
tag after it. So plaintext byte `x` of a part lives in chunk `x // CHUNK`, which
starts at ciphertext offset `HEADER + (x // CHUNK) * (CHUNK + TAG)`: a ranged read,
a resumed read and a parallel read of a part map to ciphertext ranges by arithmetic.

Keys and nonces: each part object has its own key, HMAC-SHA256(data key, "part" +
salt + object name); a chunk's nonce is its index. A fresh salt per upload means a
part uploaded twice under one name (parts.json changes in place) never reuses a
(key, nonce) pair. The AAD of a chunk is the backup id, the chunk index, a last-chunk
flag, the part's plaintext size and its object name: a chunk moved within a part, a
part renamed or swapped, a part of another backup, a part cut after a whole chunk
all fail to authenticate.
"""

from __future__ import annotations

import contextlib
import hmac
import mmap
import os
import secrets
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..checksums import BlockCrcs, PartCrcs
from ..errors import BadBackupError, TransientRemoteError, unreadable_source
from ..remotes.base import LocalRegion, Reader

CHUNK = 256 * 1024  # plaintext bytes per chunk (docs/encryption.md: why this size)
TAG = 16
MAGIC = b"SFENC\x00\x00\x01"
SALT = 16
HEADER = len(MAGIC) + SALT
_MAP_MIN = 1024 * 1024  # parts from this size are read through a mapping
_MAP_WINDOW = 32 * CHUNK  # 8 MiB mapped at a time: a part's mapped pages stay few


def n_chunks(size: int, chunk: int = CHUNK) -> int:
    return max(1, -(-size // chunk))


def cipher_len(size: int, chunk: int = CHUNK) -> int:
    """The length of the object that holds a part of `size` plaintext bytes."""
    return HEADER + size + TAG * n_chunks(size, chunk)


def overhead(size: int, chunk: int = CHUNK) -> int:
    return cipher_len(size, chunk) - size


class PartCipher:
    """The AEAD of one part object: its key from the salt, and each chunk's nonce and AAD."""

    __slots__ = ("_aad", "_aad_tail", "_aead", "chunk", "chunks", "name", "size", "url")

    def __init__(self, data_key: bytes, backup_id: bytes, name: str, salt: bytes, size: int,
                 chunk: int, url: str) -> None:
        raw_name = name.encode("utf-8", "surrogateescape")
        self._aead = AESGCM(hmac.digest(data_key, b"part\0" + salt + raw_name, "sha256"))
        self._aad = b"snapferry-chunk-1" + backup_id
        self._aad_tail = size.to_bytes(8, "big") + raw_name
        self.size, self.chunk, self.chunks, self.name, self.url = size, chunk, n_chunks(size, chunk), name, url

    def aad(self, i: int) -> bytes:
        last = b"\x01" if i == self.chunks - 1 else b"\x00"
        return self._aad + i.to_bytes(8, "big") + last + self._aad_tail

    def plain_len(self, i: int) -> int:
        return min(self.chunk, self.size - i * self.chunk)

    def seal(self, i: int, plain: bytes | memoryview) -> bytes:
        return self._aead.encrypt(i.to_bytes(12, "big"), plain, self.aad(i))

    def open_into(self, i: int, sealed: memoryview, out: memoryview) -> None:
        try:
            self._aead.decrypt_into(i.to_bytes(12, "big"), sealed, self.aad(i), out)
        except InvalidTag:
            raise BadBackupError(
                f"{self.name} in {self.url} fails authentication at its chunk {i}: the part was altered, "
                "swapped, cut or comes from another backup; nothing of it is used (a restore renames "
                "no file of it into place): make a new backup"
            ) from None



class _PlainBody(Protocol):
    """What EncryptingBody reads: the actions' upload bodies (FileRegionBody, a copy's reader)."""

    size: int

    def read(self, n: int = -1) -> bytes: ...


class EncryptingBody:
    """The ciphertext of an upload, read from the plaintext body in chunks; also takes the
    plaintext's manifest CRCs on the way, so the backup needs no second read of the part."""

    def __init__(self, plain: _PlainBody, make: Callable[[bytes], PartCipher],
                 local: LocalRegion | None = None) -> None:
        self._plain = plain
        # A big part of a local file is read through a mapping (see _mapped); small ones
        # by read, where a mapping's set-up would cost more than the copy it saves.
        self._local = local if local is not None and local.size >= _MAP_MIN else None
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._map_mv = memoryview(b"")
        self._map_at = 0
        self._plain_pos = 0  # plaintext bytes of the part mapped before the current window
        salt = secrets.token_bytes(SALT)
        self._cipher = make(salt)
        self.size = cipher_len(plain.size, self._cipher.chunk)
        self._pending = MAGIC + salt  # the sealed chunk (first, the header) being handed out
        self._at = 0  # how much of it was
        self._next = 0  # the next chunk to seal
        self._pos = 0
        self.crcs = BlockCrcs()

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of ciphertext: what is left of the current sealed chunk (a Body may
        return less than asked; every caller reads on). A chunk's bytes are the very object
        AESGCM.encrypt returned, handed out whole: no big buffer per read to allocate,
        fault in and copy (filling 8 MiB buffers was a third of an encrypted backup's CPU)."""
        left = self.size - self._pos
        if n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if self._at == len(self._pending):
            plain = self._read_plain(self._cipher.plain_len(self._next))
            self._pending, self._at = self._cipher.seal(self._next, plain), 0
            self._next += 1
        piece = self._pending[self._at : self._at + n]  # a whole bytes object slices to itself: no copy
        self._at += len(piece)
        self._pos += len(piece)
        return piece

    def _read_plain(self, want: int) -> bytes | memoryview:
        if self._local is not None:
            return self._mapped(want)
        return self._read_body(want)

    def _mapped(self, want: int) -> memoryview:
        """The next `want` plaintext bytes where the page cache holds them: no read into a
        buffer first (the file's read was half of an encrypted backup's CPU)."""
        if self._map_at + want > len(self._map_mv):
            self._remap()
        data = self._map_mv[self._map_at : self._map_at + want]
        self._map_at += want
        self.crcs.update(data)
        return data

    def _remap(self) -> None:
        """Map the next window of the part (whole chunks), after checking the file still
        holds it: touching a mapping beyond a file's end is a SIGBUS, not an error."""
        local = self._local
        assert local is not None
        self._plain_pos += self._map_at
        self._unmap()
        try:
            if self._fd < 0:
                self._fd = os.open(local.path, os.O_RDONLY | os.O_CLOEXEC)
            if os.fstat(self._fd).st_size < local.offset + local.size:
                raise BadBackupError(f"the source file {local.path!r} shrank during the backup; "
                                     "back up a snapshot, not live files")
            start = local.offset + self._plain_pos
            base = start - start % mmap.ALLOCATIONGRANULARITY
            n = min(_MAP_WINDOW, local.size - self._plain_pos)
            # MAP_POPULATE: the pages mapped in one go, not a fault per page as they are read
            self._map = mmap.mmap(self._fd, start - base + n, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                                  prot=mmap.PROT_READ, offset=base)
        except OSError as e:
            raise unreadable_source(local.path, e) from e
        if self._plain_pos + n < local.size:  # the next window read ahead while this one is sealed
            os.posix_fadvise(self._fd, start + n, min(_MAP_WINDOW, local.size - self._plain_pos - n),
                             os.POSIX_FADV_WILLNEED)
        self._map_mv = memoryview(self._map)[start - base :]
        self._map_at = 0

    def _unmap(self) -> None:
        self._map_mv.release()
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a slice still alive: the GC unmaps it
                self._map.close()
            self._map = None

    def close(self) -> None:
        self._unmap()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read_body(self, want: int) -> bytes:
        data = self._plain.read(want)
        while len(data) < want:  # a body may hand out less than asked; an empty read is its end
            more = self._plain.read(want - len(data))
            if not more:
                break
            data += more
        if len(data) != want:
            raise BadBackupError(f"the source of {self._cipher.name} ended {want - len(data)} bytes early")
        self.crcs.update(data)
        return data

    def result(self) -> PartCrcs:
        return self.crcs.result()


class DecryptingReader:
    """A Reader of `length` plaintext bytes from `offset` of an encrypted part, decrypting
    the chunks that cover them from one ranged read of the ciphertext (the first chunk's
    bytes before `offset` are decrypted and dropped: authentication is per whole chunk)."""

    def __init__(self, raw: Reader, cipher: PartCipher, offset: int, length: int) -> None:
        self._raw = raw
        self._c = cipher
        self._i = offset // cipher.chunk  # the next chunk to open
        self._skip = offset - self._i * cipher.chunk  # plaintext of that chunk before `offset`
        self._left = length
        # One chunk's ciphertext at a time; a chunk wanted whole is opened straight into the
        # caller's buffer, so the plaintext buffer is made only for a range's partial chunks.
        self._sealed = bytearray(min(cipher.chunk, cipher.size) + TAG)  # a small part: its size
        self._plain: bytearray | None = None
        self._have = memoryview(b"")  # opened plaintext not yet handed out

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0:
            return 0
        if not self._have:
            plen = self._c.plain_len(self._i)
            sealed = memoryview(self._sealed)[: plen + TAG]
            got = 0
            while got < len(sealed):
                n = self._raw.readinto(sealed[got:])
                if not n:
                    raise TransientRemoteError(
                        f"the body of {self._c.name} from {self._c.url} ended early in its chunk {self._i}"
                    )
                got += n
            if self._skip == 0 and len(buf) >= plen and self._left >= plen:
                # the whole chunk is wanted and fits: opened straight into the caller's buffer
                self._c.open_into(self._i, sealed, buf[:plen])
                self._i += 1
                self._left -= plen
                return plen
            if self._plain is None:
                self._plain = bytearray(self._c.chunk)
            self._c.open_into(self._i, sealed, memoryview(self._plain)[:plen])
            self._have = memoryview(self._plain)[self._skip : plen]
            self._skip = 0
            self._i += 1
        n = min(len(buf), len(self._have), self._left)
        buf[:n] = self._have[:n]
        self._have = self._have[n:]
        self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
