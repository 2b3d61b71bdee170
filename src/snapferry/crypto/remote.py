"""`EncryptedRemote`: an encrypted backup seen through the `Remote` Protocol as plaintext.

The actions never learn that a backup is encrypted: parts are listed with their
plaintext sizes, read in plaintext ranges, uploaded as plaintext; the manifest is
read and written in the clear; the completion marker is `backup_complete.ignore`.
Underneath, each part object is encrypted in chunks (chunks.py), the manifest is
sealed, and the marker is stored as ENCRYPTED_COMPLETE_FILE so vmrestore refuses it.

A writer (backup, copy) has an *active* key record: the one stored at the destination
when the user's key opens it, the origin's or the source's when parts are copied
server-side from there (they are sealed under that backup's data key), else a new one.
When the stored record is not the active one, the parts already there belong to
another backup: they are listed as broken, so the action deletes and replaces them,
and the new record is written before the first part or file of the new backup.

The sealed manifest holds the digest of backup_metadata.ignore (manifest.py). A writer
seals the manifest when the metadata is written (commit writes the manifest first, then
the metadata: the manifest is held until then, and one left as it was is sealed anew with
the new metadata's digest). A reader checks the metadata whenever it reads the manifest or
the metadata, and an encrypted backup without its manifest is refused: without it neither
the parts' inventory nor the metadata can be checked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BadBackupError, UsageError
from ..lease import BackupLease
from ..names import (
    BACKUP_COMPLETE_FILE,
    BACKUP_METADATA_FILE,
    ENCRYPTED_COMPLETE_FILE,
    ENCRYPTION_RECORD_FILE,
    MANIFEST_FILE,
)
from ..parts import Part, is_ignored_name, parse_name
from ..remotes.base import Body, LocalRegion, Reader, Remote, Wrapper, read_full
from ..remotes.retrying import without_retries
from . import REPLACE_FLAG
from .chunks import CHUNK, HEADER, MAGIC, TAG, DecryptingReader, EncryptingBody, PartCipher, cipher_len
from .keys import KeyRecord, UserKey
from .manifest import ManifestSeal, Opened

log = logging.getLogger("snapferry")

_MARKER_TAIL = "/" + BACKUP_COMPLETE_FILE


@dataclass(frozen=True, slots=True)
class CipherPart(Part):
    """A part as its encrypted object: the plaintext part's name, the ciphertext's size
    (what the backends read, write and copy)."""

    plain_size: int = 0

    @property
    def name(self) -> str:
        return f"{self.path}/{self.file_size:016X}_{self.offset:016X}_{self.plain_size:016X}"


class _Empty:
    def readinto(self, buf: memoryview) -> int:
        return 0

    def close(self) -> None:
        pass


class EncryptedRemote(Wrapper):
    def __init__(self, inner: Remote, record: KeyRecord, data_key: bytes, stored: KeyRecord | None,
                 *, writer: bool) -> None:
        # The retry layer goes on top of the encryption, never under it (the actions put it
        # there): a retried upload needs a fresh plaintext body, which only the caller has.
        self.inner = without_retries(inner)
        self.url = inner.url
        self.record = record
        self._key = data_key
        self._writer = writer
        # The objects there now are another backup's (or plaintext): listed broken until replaced.
        self._foreign = stored is None or stored.backup_id != record.backup_id
        self._lock = threading.Lock()
        self._salts: dict[str, bytes] = {}
        self._seal = ManifestSeal(data_key, record.backup_id, inner.url)
        # A writer's manifest, sealed once the metadata it vouches for is written; and the
        # stored one as a writer read it (a manifest left as it was is sealed anew with it).
        self._pending: bytes | None = None
        self._stored_manifest: bytes | None = None
        # A reader's manifest and metadata, checked together once (None: not read yet).
        self._checked: tuple[bytes, bytes | None] | None = None
        # Set when a reader found the metadata matching the sealed manifest's digest.
        self.metadata_authenticated = False

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    # --- the record ------------------------------------------------------------------------

    def _claim(self) -> None:
        """Write the active record before the first byte of this backup (once per run)."""
        if not self._foreign:
            return
        with self._lock:
            if self._foreign:
                self.inner.write_file(ENCRYPTION_RECORD_FILE, self.record.encode())
                self._foreign = False

    # --- parts -----------------------------------------------------------------------------

    def _cipher_part(self, p: Part) -> CipherPart:
        return CipherPart(p.path, p.file_size, p.offset, cipher_len(p.size, self.record.chunk_size),
                          p.actual_size, p.size)

    def _plain(self, p: Part) -> Part:
        if self._foreign:
            return Part(p.path, p.file_size, p.offset, p.size, -1)
        want = cipher_len(p.size, self.record.chunk_size)
        actual = p.size if p.actual_size == want else p.actual_size - (want - p.size)
        return Part(p.path, p.file_size, p.offset, p.size, actual)

    def list_parts(self) -> list[Part]:
        return [self._plain(p) for p in self.inner.list_parts()]

    def list_objects(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for name, size in self.inner.list_objects():
            if name == ENCRYPTED_COMPLETE_FILE or name.endswith("/" + ENCRYPTED_COMPLETE_FILE):
                out.append((name[: -len(ENCRYPTED_COMPLETE_FILE)] + BACKUP_COMPLETE_FILE, size))
                continue
            p = None if is_ignored_name(name) else parse_name(name, size)
            out.append((name, self._plain(p).actual_size) if p is not None else (name, size))
        return out

    def _cipher(self, p: Part, salt: bytes) -> PartCipher:
        return PartCipher(self._key, self.record.backup_id, p.name, salt, p.size, self.record.chunk_size, self.url)

    def _check_header(self, p: Part, header: bytes) -> bytes:
        if len(header) != HEADER or header[: len(MAGIC)] != MAGIC:
            raise BadBackupError(
                f"{p.name} in {self.url} is not an encrypted snapferry part (its header is wrong): it was "
                "altered or replaced; make a new backup"
            )
        return header[len(MAGIC):]

    def _salt(self, p: Part, cp: CipherPart) -> bytes:
        salt = self._salts.get(p.name)
        if salt is None:
            reader = self.inner.open_part(cp, 0, HEADER)
            try:
                buf = bytearray(HEADER)
                got = read_full(reader, memoryview(buf))
            finally:
                reader.close()
            salt = self._check_header(p, bytes(buf[:got]))
            self._salts[p.name] = salt  # one dict store: atomic under the GIL
        return salt

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        if length is None:
            length = part.size - offset
        if length == 0:
            return _Empty()
        c = self.record.chunk_size
        cp = self._cipher_part(part)
        first, last = offset // c, (offset + length - 1) // c
        end = HEADER + last * (c + TAG) + min(c, part.size - last * c) + TAG
        if first == 0:
            raw = self.inner.open_part(cp, 0, end)  # the header comes first in the same read
            try:
                buf = bytearray(HEADER)
                got = read_full(raw, memoryview(buf))
                salt = self._check_header(part, bytes(buf[:got]))
            except BaseException:
                raw.close()
                raise
            self._salts.setdefault(part.name, salt)
        else:
            salt = self._salt(part, cp)
            start = HEADER + first * (c + TAG)
            raw = self.inner.open_part(cp, start, end - start)
        return DecryptingReader(raw, self._cipher(part, salt), offset, length)

    def upload_part(self, part: Part, body: Body, local: LocalRegion | None = None,
                    progress: Callable[[int], None] | None = None) -> list[int] | None:
        self._claim()
        enc = EncryptingBody(body, lambda salt: self._cipher(part, salt), local)
        try:
            # No LocalRegion below: a backend must read the ciphertext, never copy the plaintext file.
            self.inner.upload_part(self._cipher_part(part), enc, None, progress)
        finally:
            enc.close()
        self._salts.pop(part.name, None)
        return enc.result()

    def delete_part(self, part: Part) -> None:
        self.inner.delete_part(self._cipher_part(part))

    def can_copy_from(self, src: Remote) -> bool:
        # Parts are sealed under their backup's data key and id, never the destination's:
        # between two places holding one backup's record, the objects copy as they are.
        return (isinstance(src, EncryptedRemote) and src.record.backup_id == self.record.backup_id
                and self.inner.can_copy_from(src.inner))

    def copy_part(self, src: Remote, part: Part) -> None:
        assert isinstance(src, EncryptedRemote)
        self._claim()
        self.inner.copy_part(src.inner, self._cipher_part(part))

    # --- small files -----------------------------------------------------------------------

    def has_file(self, name: str) -> bool:
        if name == BACKUP_COMPLETE_FILE:
            return not self._foreign and self.inner.has_file(ENCRYPTED_COMPLETE_FILE)
        if name.endswith(_MARKER_TAIL):  # a backup below this one (the nesting checks): either kind
            return (self.inner.has_file(name[: -len(BACKUP_COMPLETE_FILE)] + ENCRYPTED_COMPLETE_FILE)
                    or self.inner.has_file(name))
        if name == MANIFEST_FILE:
            if self._foreign:
                return False
            present = self.inner.has_file(name)
            if not present and not self._writer:
                raise self._no_manifest()
            return present
        return self.inner.has_file(name)

    def _no_manifest(self) -> BadBackupError:
        # Deleting it would otherwise hide lost parts and an edited metadata file alike.
        return BadBackupError(
            f"{self.url}: {MANIFEST_FILE} is missing: every encrypted backup has its sealed manifest, so it "
            "was deleted (or the backup never completed), and neither the parts nor the metadata can be "
            "checked; restore it from another copy or make a new backup"
        )

    def read_file(self, name: str) -> bytes:
        if name == BACKUP_COMPLETE_FILE:  # a copy carries the marker's bytes over
            return self.inner.read_file(ENCRYPTED_COMPLETE_FILE)
        if name == MANIFEST_FILE:
            return self._read_manifest()
        if name == BACKUP_METADATA_FILE and not self._writer:
            metadata = self._check()[1]
            if metadata is None:
                return self.inner.read_file(name)  # not there: the inner remote's own error
            return metadata
        return self.inner.read_file(name)

    def _read_manifest(self) -> bytes:
        if not self._writer:
            return self._check()[0]
        try:
            manifest = self._seal.open(self.inner.read_file(MANIFEST_FILE)).manifest
        except BadBackupError:
            log.warning("%s: the manifest there is not this backup's; it is rewritten", self.url)
            return b""  # a writer replaces it; checksums.decode reads nothing from it
        self._stored_manifest = manifest
        return manifest

    def _check(self) -> tuple[bytes, bytes | None]:
        """A reader's manifest and metadata, the metadata checked against the sealed digest."""
        if self._checked is None:
            if not self.inner.has_file(MANIFEST_FILE):
                raise self._no_manifest()
            opened: Opened = self._seal.open(self.inner.read_file(MANIFEST_FILE))
            metadata = self._stored_metadata()
            self.metadata_authenticated = self._seal.check_metadata(opened, metadata)
            self._checked = (opened.manifest, metadata)
        return self._checked

    def _stored_metadata(self) -> bytes | None:
        has = self.inner.has_file(BACKUP_METADATA_FILE)
        return self.inner.read_file(BACKUP_METADATA_FILE) if has else None

    def write_file(self, name: str, data: bytes) -> None:
        if name == BACKUP_COMPLETE_FILE:
            self._claim()
            if self._pending is not None:  # the metadata was left as it was: sealed with the stored one's digest
                self._seal_manifest(self._stored_metadata())
            self.inner.write_file(ENCRYPTED_COMPLETE_FILE, data)
        elif name == MANIFEST_FILE:
            self._claim()
            self._pending = data  # sealed with the metadata's digest when commit writes the metadata next
        elif name == BACKUP_METADATA_FILE:
            self._claim()
            self.inner.write_file(name, data)
            self._seal_manifest(data)
        else:
            self.inner.write_file(name, data)

    def _seal_manifest(self, metadata: bytes | None) -> None:
        """Write the manifest (the one written, or the stored one) sealed with `metadata`'s digest."""
        manifest = self._pending if self._pending is not None else self._stored_manifest
        if manifest is None and self._writer and self.inner.has_file(MANIFEST_FILE):
            manifest = self._read_manifest() or None
        if manifest is None:
            return  # no manifest to vouch for it: verify and restore say the manifest is missing
        self.inner.write_file(MANIFEST_FILE, self._seal.seal(manifest, metadata))
        self._pending, self._stored_manifest = None, manifest

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        return self.inner.create_file_exclusive(name, data)

    def delete_file(self, name: str) -> None:
        if name == ENCRYPTION_RECORD_FILE:
            return  # the record is this view's own: rekey and _claim write it, nothing deletes it
        if name == BACKUP_COMPLETE_FILE:
            self.inner.delete_file(ENCRYPTED_COMPLETE_FILE)
        self.inner.delete_file(name)
        if name == MANIFEST_FILE:
            self._pending = self._stored_manifest = None
        elif name == BACKUP_METADATA_FILE:
            self._seal_manifest(None)

    def child(self, sub: str) -> Remote:
        raise UsageError(f"{self.url}: an encrypted backup holds no other backups below it")

    def close(self) -> None:
        self.inner.close()


def _stored(inner: Remote) -> KeyRecord | None:
    if not inner.has_file(ENCRYPTION_RECORD_FILE):
        return None
    return KeyRecord.decode(inner.read_file(ENCRYPTION_RECORD_FILE), inner.url)


def open_encrypted(inner: Remote, user: UserKey) -> EncryptedRemote:
    """A reader's view (restore, verify, info, copy's source): the stored record, opened by the key."""
    stored = _stored(inner)
    if stored is None:
        if inner.has_file(BACKUP_COMPLETE_FILE):
            raise UsageError(f"{inner.url} is not an encrypted backup; drop --encryption-key-file")
        raise UsageError(
            f"{inner.url} holds no encrypted backup (no {ENCRYPTION_RECORD_FILE}); check the URL"
        )
    return EncryptedRemote(inner, stored, stored.unwrap(user, inner.url), stored, writer=False)


def for_writing(inner: Remote, user: UserKey, source: EncryptedRemote | None = None, *,
                replace: bool = False) -> EncryptedRemote:
    """A writer's view (backup's --dst, copy's --dst): the record of `source` (an --origin or
    a copy's --src, whose parts are copied as they are), else the one stored there, else a new one.

    A stored record another key wrapped stops the run (exit 2) before anything is written:
    replacing it would throw away an encrypted backup the user may have meant to keep, and
    may not even hold the key of. `replace` (--replace-encrypted) lets a copy or a backup from
    an --origin replace it on purpose; a backup without an origin must open it (its parts are
    reused), so there it is always refused."""
    try:
        stored = _stored(inner)
    except BadBackupError:
        stored = None  # an unreadable record is replaced with the backup it describes
    if source is not None:
        if (stored is not None and not replace and stored.backup_id != source.record.backup_id
                and stored.fingerprint != user.fingerprint):
            raise UsageError(
                f"{inner.url} holds an encrypted backup made with another key ({stored.fingerprint}; "
                f"{user.path!r} is {user.fingerprint}), which this run would replace; choose another "
                f"destination, or pass {REPLACE_FLAG} to replace it on purpose"
            )
        return EncryptedRemote(inner, source.record, source._key, stored, writer=True)
    if stored is not None:
        return EncryptedRemote(inner, stored, stored.unwrap(user, inner.url), stored, writer=True)
    record, key = KeyRecord.new(user, CHUNK)
    return EncryptedRemote(inner, record, key, None, writer=True)


def rekey(inner: Remote, old: UserKey, new: UserKey) -> tuple[str, str]:
    """Wrap the backup's data key with `new`: only the record is rewritten, never a part.

    Under the backup's lease, as every writer there: a copy replacing the backup (with its own
    record) or a second rekey could otherwise write between our read and our write, leaving a
    record that opens none of the parts, or a key the user was told works that does not."""
    with BackupLease(inner, "rekey"):
        view = open_encrypted(inner, old)
        inner.write_file(ENCRYPTION_RECORD_FILE, view.record.wrapped_by(new, view._key).encode())
        check = _stored(inner)
        assert check is not None
        check.unwrap(new, inner.url)  # read back: the new key opens what was written
    return old.fingerprint, new.fingerprint

