"""Client-side encryption of a backup (docs/encryption.md).

`keys.py`: the user's key file, the per-backup data key and its wrapped record;
`chunks.py`: the format of one encrypted part (header, chunks, nonces, AAD) and the
streams that encrypt an upload and decrypt a ranged read; `manifest.py`: the sealed
manifest, which authenticates backup_metadata.ignore too; `remote.py`: the
`EncryptedRemote` wrapper that gives the actions a plaintext view of an encrypted
backup, so the pipelines (backup, restore, copy, verify, info) stay as they are.

This module itself loads no cipher: a run without a key pays nothing for encryption.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..names import ENCRYPTED_COMPLETE_FILE, ENCRYPTION_RECORD_FILE
from ..remotes.base import Transparent, Wrapper

if TYPE_CHECKING:
    from ..remotes.base import Remote
    from .keys import UserKey

# The flag that lets a plain backup or copy replace an encrypted one (`-snapferry.replaceEncrypted`
# in the drop-in vmbackup). Not `--force`: backup's --force allows a stopped data directory as the
# source, a different risk; one flag must not silently allow both.
REPLACE_FLAG = "--replace-encrypted"


def load_optional_key(key_file: str | None) -> UserKey | None:
    """The key --encryption-key-file names, read before any remote is opened (a bad one is
    exit 2), or None without one. `keys` (and `cryptography`) load only when a key is given."""
    if not key_file:
        return None
    from .keys import load_key

    return load_key(key_file)


class Writer(enum.Enum):
    """Who would write plaintext over an encrypted backup: the remedy said differs."""

    BACKUP = "backup"
    COPY = "copy"
    MANAGER = "manager"


def holds_encrypted_backup(remote: Remote) -> bool:
    """An encrypted snapferry backup is there, complete or not (its record is written before
    its first part; the marker is checked too, for a record lost on its own)."""
    return remote.has_file(ENCRYPTION_RECORD_FILE) or remote.has_file(ENCRYPTED_COMPLETE_FILE)


def refuse_plaintext_over_encrypted(dst: Remote, writer: Writer, *, encrypted: bool,
                                    replace: bool = False, src: Remote | None = None) -> None:
    """UsageError (exit 2) when an unencrypted `writer` would replace the encrypted backup at
    `dst`: it would delete that backup and put the data in the clear in a place the user chose
    encryption for. Called where the destination is opened for writing, before any write.

    `encrypted`: this run encrypts (nothing to refuse); `replace`: the user asked for it
    (--replace-encrypted); `src`: a copy's source, whose own refusal (an encrypted source
    without a key) is the one to say when it applies."""
    if encrypted or replace or not holds_encrypted_backup(dst):
        return
    if src is not None and holds_encrypted_backup(src):
        from ..actions.complete import encrypted_message

        raise UsageError(encrypted_message(src))
    what = {
        Writer.BACKUP: ("this backup is not encrypted; add --encrypt --encryption-key-file FILE "
                        "(-snapferry.encryptionKeyFile=FILE in the drop-in vmbackup) to keep it encrypted, or "
                        f"{REPLACE_FLAG} (-snapferry.replaceEncrypted) to replace it with an unencrypted backup "
                        "on purpose"),
        Writer.COPY: (f"the copy would replace it with the unencrypted backup {src.url if src else '--src'}; "
                      f"choose another --dst, or pass {REPLACE_FLAG} (-snapferry.replaceEncrypted in the drop-in "
                      "vmbackup) to replace it on purpose"),
        Writer.MANAGER: ("this manager has no key and would replace it with an unencrypted backup; give it the "
                         "key file (--encrypt --encryption-key-file FILE, -snapferry.encryptionKeyFile=FILE in "
                         "vmbackupmanager), or delete that backup to make unencrypted backups there on purpose"),
    }[writer]
    raise UsageError(f"{dst.url} holds an encrypted backup, and {what}")


def metadata_authenticated(remote: Remote) -> bool:
    """Whether `remote` is an encrypted backup whose backup_metadata.ignore was read and found
    to match the digest its sealed manifest holds (False for a plain backup, and for one
    sealed before the digest was added)."""
    while isinstance(remote, Transparent):
        remote = remote.inner
    if not isinstance(remote, Wrapper):  # only an encrypted view stores through another remote
        return False
    from .remote import EncryptedRemote

    return isinstance(remote, EncryptedRemote) and remote.metadata_authenticated
