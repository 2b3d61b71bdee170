"""The manager's encryption (docs/encryption.md): latest/ sealed under its record, and each
dated copy taking latest/'s record, so its sealed parts are copied server-side as they are.

The crypto modules (and `cryptography`) are loaded only by a manager given a key file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..remotes import Remote

if TYPE_CHECKING:
    from ..crypto.keys import UserKey


def latest(remote: Remote, key: UserKey | None) -> Remote:
    """latest/ as a backup writes it; a latest/ made with another key is exit 2."""
    if key is None:
        return remote
    from ..crypto.remote import for_writing

    return for_writing(remote, key)


def copy_pair(src: Remote, dst: Remote, key: UserKey | None) -> tuple[Remote, Remote]:
    """latest/ read with the key, and the dated backup written under latest/'s record."""
    if key is None:
        return src, dst
    from ..crypto.remote import for_writing, open_encrypted

    opened = open_encrypted(src, key)
    return opened, for_writing(dst, key, opened)
