"""Client-side encryption of a backup (docs/encryption.md).

`keys.py`: the user's key file, the per-backup data key and its wrapped record;
`chunks.py`: the format of one encrypted part (header, chunks, nonces, AAD) and the
streams that encrypt an upload and decrypt a ranged read; `remote.py`: the
`EncryptedRemote` wrapper that gives the actions a plaintext view of an encrypted
backup, so the pipelines (backup, restore, copy, verify, info) stay as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .keys import UserKey


def load_optional_key(key_file: str | None) -> UserKey | None:
    """The key --encryption-key-file names, read before any remote is opened (a bad one is
    exit 2), or None without one. `keys` (and `cryptography`) load only when a key is given."""
    if not key_file:
        return None
    from .keys import load_key

    return load_key(key_file)
