"""The user's key file, the per-backup data key and the record that wraps it.

A backup's bytes are encrypted under a random data key of its own; what the bucket
holds of it is `snapferry_encryption.ignore`: the data key wrapped (AES-256-GCM) by a
key derived from the user's key, and the user key's fingerprint. Rekeying rewrites
only that record, never a part.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import json
import os
import secrets
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import BadBackupError, UsageError

KEY_FILE_HEADER = "snapferry-key-1"
RECORD_FORMAT = "snapferry-encryption 1"
CIPHER = "AES-256-GCM"
KEY_BYTES = 32
BACKUP_ID_BYTES = 16
# The environment variable that may name the key file (never holds the key itself).
KEY_FILE_ENV = "SNAPFERRY_ENCRYPTION_KEY_FILE"


@dataclass(frozen=True, slots=True)
class UserKey:
    """The user's key as read from its file; `repr` never shows the bytes."""

    secret: bytes
    path: str

    def __repr__(self) -> str:
        return f"UserKey({self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        # A keyed hash of a 256-bit random key: it names the key and reveals nothing of it.
        return "sf1:" + hmac.digest(self.secret, b"snapferry key fingerprint", "sha256")[:12].hex()

    def kek(self) -> AESGCM:
        """The key-encryption key, apart from the user key so neither is used for two jobs."""
        return AESGCM(hmac.digest(self.secret, b"snapferry key wrapping", "sha256"))


def keygen(path: str) -> UserKey:
    """Write a new random key to `path` (mode 0600, durable); an existing file is refused."""
    secret = secrets.token_bytes(KEY_BYTES)
    text = f"{KEY_FILE_HEADER} {base64.b64encode(secret).decode()}\n".encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise UsageError(f"the key file {path!r} exists; keygen never overwrites a key, pick a new name") from None
    except OSError as e:
        raise UsageError(f"cannot create the key file {path!r}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits the mode asked for; never more than 0600
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return UserKey(secret, path)


def load_key(path: str, flag: str = "--encryption-key-file") -> UserKey:
    """The key in `path`; any problem is one sentence naming the file (exit 2)."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        hint = "create one with `snapferry keygen FILE`" if e.errno == errno.ENOENT else "check its permissions"
        raise UsageError(f"{flag} {path!r} cannot be read ({e.strerror}); {hint}") from None
    head, _, b64 = data.decode("ascii", "replace").strip().partition(" ")
    try:
        secret = base64.b64decode(b64, validate=True) if head == KEY_FILE_HEADER else b""
    except binascii.Error:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise UsageError(f"{flag} {path!r} is not a snapferry key file; create one with `snapferry keygen FILE`")
    return UserKey(secret, path)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What `snapferry_encryption.ignore` holds: the backup's identity and its wrapped data key."""

    backup_id: bytes
    fingerprint: str
    wrap_nonce: bytes
    wrapped_key: bytes
    chunk_size: int

    @staticmethod
    def new(user: UserKey, chunk_size: int) -> tuple[KeyRecord, bytes]:
        """A fresh backup identity and data key, wrapped by `user`; returns (record, data key)."""
        data_key = secrets.token_bytes(KEY_BYTES)
        rec = KeyRecord(secrets.token_bytes(BACKUP_ID_BYTES), "", b"", b"", chunk_size)
        return rec.wrapped_by(user, data_key), data_key

    def wrapped_by(self, user: UserKey, data_key: bytes) -> KeyRecord:
        nonce = secrets.token_bytes(12)
        wrapped = user.kek().encrypt(nonce, data_key, self._aad())
        return replace(self, fingerprint=user.fingerprint, wrap_nonce=nonce, wrapped_key=wrapped)

    def unwrap(self, user: UserKey, url: str) -> bytes:
        """The data key; a different key is exit 2 naming both fingerprints, before any write."""
        if user.fingerprint != self.fingerprint:
            raise UsageError(
                f"{url} was encrypted with the key {self.fingerprint}, but {user.path!r} is the key "
                f"{user.fingerprint}; give the key file the backup was made with"
            )
        try:
            return user.kek().decrypt(self.wrap_nonce, self.wrapped_key, self._aad())
        except InvalidTag:
            raise BadBackupError(
                f"{url}: the wrapped data key in snapferry_encryption.ignore fails authentication with "
                f"the key {user.fingerprint}; the record was altered, restore it from another copy"
            ) from None

    def _aad(self) -> bytes:
        # The backup id and the chunk size are bound to the wrapped key: editing either fails the unwrap.
        return b"snapferry-wrap-1" + self.backup_id + self.chunk_size.to_bytes(8, "big")

    def encode(self) -> bytes:
        return json.dumps({
            "format": RECORD_FORMAT, "cipher": CIPHER, "chunk_size": self.chunk_size,
            "backup_id": self.backup_id.hex(), "key_fingerprint": self.fingerprint,
            "wrap_nonce": base64.b64encode(self.wrap_nonce).decode(),
            "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
        }, indent=1).encode() + b"\n"

    @staticmethod
    def decode(data: bytes, url: str) -> KeyRecord:
        try:
            d = json.loads(data)
            if d["format"] != RECORD_FORMAT or d["cipher"] != CIPHER:
                raise ValueError(d["format"])
            rec = KeyRecord(bytes.fromhex(d["backup_id"]), str(d["key_fingerprint"]),
                            base64.b64decode(d["wrap_nonce"]), base64.b64decode(d["wrapped_key"]),
                            int(d["chunk_size"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise BadBackupError(
                f"{url}: snapferry_encryption.ignore is not a snapferry encryption record this version "
                "reads; restore it from another copy of the backup"
            ) from None
        if len(rec.backup_id) != BACKUP_ID_BYTES or not 0 < rec.chunk_size <= 1 << 26:
            raise BadBackupError(f"{url}: snapferry_encryption.ignore is malformed; restore it from another copy")
        return rec

