"""The sealed manifest: the checksum manifest and the digest of backup_metadata.ignore,
authenticated together.

The object `snapferry_checksums.ignore` of an encrypted backup is a 24-byte header (the
parts' magic and a random salt) and one AES-256-GCM seal, under a key of its own derived
from the data key and the salt, nonce zero, AAD "snapferry-manifest-1" ‖ backup id.

What is sealed starts with one line, `snapferry-metadata-sha256 <hex>` (or `... none` when
the backup has no metadata), then the checksum manifest as checksums.py writes it. The
metadata stays a plain JSON file (the manager's catalog and retention read its times
without a key); the digest in the sealed part makes an edit of it evident. A manifest
sealed before the digest was added (the first encrypted format) opens to the checksum
manifest alone: its first line is the checksum header, never this one, and since the
whole plaintext is authenticated nobody without the data key can make either from the other.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import BadBackupError
from ..names import BACKUP_METADATA_FILE, MANIFEST_FILE
from .chunks import HEADER, MAGIC, SALT

DIGEST_LINE = b"snapferry-metadata-sha256 "
NO_METADATA = "none"
_DIGEST = re.compile(rb"snapferry-metadata-sha256 ([0-9a-f]{64}|none)\n")


def metadata_digest(metadata: bytes | None) -> str:
    return NO_METADATA if metadata is None else hashlib.sha256(metadata).hexdigest()


@dataclass(frozen=True, slots=True)
class Opened:
    manifest: bytes  # the checksum manifest, as checksums.py reads it
    # the metadata's digest (hex, or NO_METADATA); None: sealed before the digest existed
    metadata_digest: str | None


@dataclass(frozen=True, slots=True)
class ManifestSeal:
    """Seals and opens the manifest of one backup (its data key and id)."""

    data_key: bytes
    backup_id: bytes
    url: str

    def _aead(self, salt: bytes) -> AESGCM:
        return AESGCM(hmac.digest(self.data_key, b"manifest\0" + salt, "sha256"))

    def _aad(self) -> bytes:
        return b"snapferry-manifest-1" + self.backup_id

    def seal(self, manifest: bytes, metadata: bytes | None) -> bytes:
        salt = secrets.token_bytes(SALT)
        plain = DIGEST_LINE + metadata_digest(metadata).encode() + b"\n" + manifest
        return MAGIC + salt + self._aead(salt).encrypt(bytes(12), plain, self._aad())

    def open(self, blob: bytes) -> Opened:
        try:
            if blob[: len(MAGIC)] != MAGIC:
                raise InvalidTag()
            plain = self._aead(blob[len(MAGIC) : HEADER]).decrypt(bytes(12), blob[HEADER:], self._aad())
        except InvalidTag:
            raise BadBackupError(
                f"{self.url}: {MANIFEST_FILE} fails authentication: it was altered or comes from another "
                "backup; restore it from another copy or make a new backup"
            ) from None
        if not plain.startswith(DIGEST_LINE):
            return Opened(plain, None)
        m = _DIGEST.match(plain)
        if m is None:  # authenticated, so written by a snapferry this one does not understand
            raise BadBackupError(f"{self.url}: {MANIFEST_FILE} has a metadata digest this version cannot read; "
                                 "use a newer snapferry")
        return Opened(plain[m.end():], m.group(1).decode())

    def check_metadata(self, opened: Opened, metadata: bytes | None) -> bool:
        """True when `metadata` is the one the sealed manifest vouches for; False when the
        manifest predates the digest (nothing to check); BadBackupError when it differs."""
        if opened.metadata_digest is None:
            return False
        found = metadata_digest(metadata)
        if hmac.compare_digest(found, opened.metadata_digest):
            return True
        if metadata is None:
            why = "is missing, but the sealed manifest records one"
        elif opened.metadata_digest == NO_METADATA:
            why = "is there, but the sealed manifest records none"
        else:
            why = "does not match the digest the sealed manifest holds of it"
        raise BadBackupError(
            f"{self.url}: {BACKUP_METADATA_FILE} {why}: it was altered or replaced (its times cannot be "
            "trusted); restore it from another copy of the backup, or make a new backup"
        )
