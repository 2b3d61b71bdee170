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

import hmac
import mmap
import os
import secrets
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import directio
from ..checksums import BlockCrcs, PartCrcs
from ..errors import BadBackupError, TransientRemoteError, unreadable_source
from ..remotes._fsio import FileRangeReader
from ..remotes.base import LocalRegion, Reader, ViewReader, read_full

CHUNK = 256 * 1024  # plaintext bytes per chunk (docs/encryption.md: why this size)
TAG = 16
MAGIC = b"SFENC\x00\x00\x01"
SALT = 16
HEADER = len(MAGIC) + SALT
_WINDOW_MIN = 1024 * 1024  # parts from this size are read in windows of the file
_WINDOW = 8 * CHUNK  # 2 MiB a window: a direct read waits for the disk (no readahead), so not too small
_BATCH = 4  # chunks a restore's read takes at once: a quarter of the syscalls, 1 MiB of ciphertext
# Chunks a direct read (fs://, ViewReader) takes at once: without the page cache there is no
# readahead, so each read waits for the disk; 2 MiB a read keeps the device busy (4 MiB: no faster, more RSS).
_DIRECT_BATCH = 8
_DIRECT_MIN = 1024 * 1024  # plaintext bytes of a range from which it is read direct


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

    def seal_into(self, i: int, plain: bytes | memoryview, out: memoryview) -> None:
        """Chunk i sealed into `out` (exactly its plaintext and tag long): no new object,
        and OpenSSL runs with the GIL released, so the upload threads seal in parallel."""
        self._aead.encrypt_into(i.to_bytes(12, "big"), plain, self.aad(i), out)

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
        # A big part of a local file is read in windows of whole chunks (see _windowed);
        # small ones through the body, in one read each.
        self._local = local if local is not None and local.size >= _WINDOW_MIN else None
        self._src: FileRangeReader | None = None
        self._win: bytearray | mmap.mmap = bytearray()
        self._win_mv = memoryview(self._win)
        self._win_at = 0
        self._plain_pos = 0  # plaintext bytes of the part read before the current window
        salt = secrets.token_bytes(SALT)
        self._cipher = make(salt)
        self.size = cipher_len(plain.size, self._cipher.chunk)
        # The bytes being handed out in pieces (first, the header; later a chunk sealed aside)
        self._pending: bytes | memoryview = MAGIC + salt
        self._at = 0  # how much of it was
        self._spare: bytearray | None = None  # where a chunk that fits nowhere whole is sealed
        self._next = 0  # the next chunk to seal
        self._pos = 0
        self.crcs = BlockCrcs()

    def readinto(self, buf: memoryview) -> int:
        """The next ciphertext bytes into buf; 0 only at the end. Every chunk that fits whole
        is sealed straight into buf (encrypt_into): no object per chunk to allocate, fault in,
        copy and free (a new 256 KiB bytes per chunk was a glibc mmap and munmap each, and
        then a copy into the upload's buffer). Returns short rather than cut the next chunk
        when buf already holds some: a caller that writes whole aligned blocks (fs://) then
        comes back with room. Only a chunk that fits nowhere whole is sealed aside."""
        n = min(len(buf), self.size - self._pos)
        done = 0
        if self._at < len(self._pending):  # the header, or what is left of a chunk sealed aside
            done = min(n, len(self._pending) - self._at)
            buf[:done] = self._pending[self._at : self._at + done]
            self._at += done
        while done < n:
            plen = self._cipher.plain_len(self._next)
            slen = plen + TAG
            if n - done >= slen:
                self._cipher.seal_into(self._next, self._read_plain(plen), buf[done : done + slen])
            elif done:
                break
            else:
                if self._spare is None:
                    self._spare = bytearray(self._cipher.chunk + TAG)
                sealed = memoryview(self._spare)[:slen]
                self._cipher.seal_into(self._next, self._read_plain(plen), sealed)
                self._pending, self._at = sealed, n - done
                buf[done:n] = sealed[: n - done]
                done = n
                self._next += 1
                break
            self._next += 1
            done += slen
        self._pos += done
        return done

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes of ciphertext (for a caller without readinto; the backends use readinto)."""
        left = self.size - self._pos
        if n < 0 or n > left:
            n = left
        out = bytearray(n)
        with memoryview(out) as mv:
            got = 0
            while got < n:
                got += self.readinto(mv[got:])
        return bytes(out)

    def _read_plain(self, want: int) -> bytes | memoryview:
        if self._local is not None:
            return self._windowed(want)
        return self._read_body(want)

    def _windowed(self, want: int) -> memoryview:
        """The next `want` plaintext bytes of a big local part, from a window of whole chunks
        read with O_DIRECT into an aligned buffer reused for the part. A mapping of the file
        instead (MAP_POPULATE) cost more CPU, not less, faulted the pages in synchronously and
        counted them in the RSS."""
        if self._win_at + want > len(self._win_mv):
            self._fill_window()
        data = self._win_mv[self._win_at : self._win_at + want]
        self._win_at += want
        self.crcs.update(data)
        return data

    def _fill_window(self) -> None:
        local = self._local
        assert local is not None
        self._plain_pos += self._win_at
        self._win_mv.release()
        try:
            if self._src is None:
                fd = os.open(local.path, os.O_RDONLY | os.O_CLOEXEC)
                # Read with O_DIRECT into an aligned window, as an unencrypted fs:// upload reads
                # (FileRangeReader.view says why); the page cache if the filesystem refuses.
                self._src = FileRangeReader(fd, local.offset, local.size)
                self._win = directio.buffer(min(_WINDOW, local.size))
            n = min(len(self._win), local.size - self._plain_pos)
            mv = memoryview(self._win)[:n]
            if read_full(self._src, mv) < n:
                mv.release()
                raise BadBackupError(f"the source file {local.path!r} shrank during the backup; "
                                     "back up a snapshot, not live files")
        except OSError as e:
            raise unreadable_source(local.path, e) from e
        self._win_mv = mv
        self._win_at = 0

    def close(self) -> None:
        self._win_mv.release()
        if self._src is not None:
            self._src.close()
            self._src = None
        if isinstance(self._win, mmap.mmap):
            self._win.close()

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
        # fs:// lends the ciphertext in place (read with O_DIRECT): no copy through the page cache.
        # Only for big ranges: a small part read direct is a disk round trip without readahead,
        # after its header was already read (and read ahead) through the page cache.
        self._view = raw if length >= _DIRECT_MIN and isinstance(raw, ViewReader) else None
        self._batch = _DIRECT_BATCH if self._view is not None else _BATCH
        self._c = cipher
        self._i = offset // cipher.chunk  # the next chunk to open
        self._skip = offset - self._i * cipher.chunk  # plaintext of that chunk before `offset`
        self._left = length
        # Ciphertext of up to _BATCH chunks, read in one go (made on first use, at the size
        # the range needs); chunks wanted whole are opened straight into the caller's buffer,
        # so the plaintext buffer is made only for a range's partial chunks.
        self._sealed: bytearray | None = None
        self._plain: bytearray | None = None
        self._have = memoryview(b"")  # opened plaintext not yet handed out

    def _read_sealed(self, count: int) -> memoryview:
        """The ciphertext of `count` chunks from the next one, read into the sealed buffer
        with as few reads as the stream allows (one preadv on fs:// for all of them)."""
        c = self._c
        end = min(self._i + count, c.chunks)
        want = (end - self._i) * (c.chunk + TAG) - c.chunk + c.plain_len(end - 1)
        if self._view is not None:
            sealed = self._view.view(want)
            if len(sealed) < want:
                at = self._i + len(sealed) // (c.chunk + TAG)
                raise TransientRemoteError(f"the body of {c.name} from {c.url} ended early in its chunk {at}")
            return sealed
        if self._sealed is None or len(self._sealed) < want:
            left_chunks = c.chunks - self._i
            size = min(_BATCH, left_chunks) * (c.chunk + TAG) if left_chunks > 1 else want
            self._sealed = bytearray(max(size, want))
        sealed = memoryview(self._sealed)[:want]
        got = 0
        while got < want:
            n = self._raw.readinto(sealed[got:])
            if not n:
                raise TransientRemoteError(
                    f"the body of {c.name} from {c.url} ended early in its chunk {self._i + got // (c.chunk + TAG)}"
                )
            got += n
        return sealed

    def readinto(self, buf: memoryview) -> int:
        if self._left <= 0:
            return 0
        if self._have:
            return self._hand_out(buf)
        c = self._c
        whole = 0  # chunks from the next one wanted whole that fit in buf
        if self._skip == 0:
            room = min(len(buf), self._left)
            whole = room // c.chunk
            last_fits = self._i + whole < c.chunks and c.plain_len(self._i + whole) <= room - whole * c.chunk
            if whole < self._batch and last_fits:
                whole += 1  # the part's last, shorter chunk
            whole = min(whole, self._batch, c.chunks - self._i)
        if whole:
            sealed = self._read_sealed(whole)
            done = 0
            for k in range(whole):
                plen = c.plain_len(self._i)
                at = k * (c.chunk + TAG)
                c.open_into(self._i, sealed[at : at + plen + TAG], buf[done : done + plen])
                self._i += 1
                done += plen
            self._left -= done
            return done
        plen = c.plain_len(self._i)
        sealed = self._read_sealed(1)
        if self._plain is None:
            self._plain = bytearray(c.chunk)
        c.open_into(self._i, sealed, memoryview(self._plain)[:plen])
        self._have = memoryview(self._plain)[self._skip : plen]
        self._skip = 0
        self._i += 1
        return self._hand_out(buf)

    def _hand_out(self, buf: memoryview) -> int:
        n = min(len(buf), len(self._have), self._left)
        buf[:n] = self._have[:n]
        self._have = self._have[n:]
        self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
