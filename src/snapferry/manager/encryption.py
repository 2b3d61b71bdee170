"""The manager's encryption (docs/encryption.md): latest/ sealed under its record, checked at
start (the runs' Backup and Copy apply the key themselves: actions/opening.py).

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

