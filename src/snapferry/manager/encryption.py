"""The manager's encryption (docs/encryption.md): latest/ sealed under its record, and each
dated copy taking latest/'s record, so its sealed parts are copied server-side as they are.

A manager without a key never writes over an encrypted backup (latest/ or a dated one):
that run fails (logged, counted as a failed backup) and the backup stays as it was.

The crypto modules (and `cryptography`) are loaded only by a manager given a key file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..crypto import Writer, holds_encrypted_backup, refuse_plaintext_over_encrypted
from ..remotes import Remote

if TYPE_CHECKING:
    from ..crypto.keys import UserKey

log = logging.getLogger("snapferry")


def check_at_start(remote: Remote, key: UserKey | None) -> None:
    """At start: a latest/ made with another key is exit 2. Without a key, an encrypted
    latest/ is only warned of: the service stays up (its restore API, its probes), and each run
    fails with the reason until it is given the key or that backup is deleted."""
    if key is not None:
        latest(remote, key)
    elif holds_encrypted_backup(remote):
        log.warning("%s holds an encrypted backup and this manager has no key: every backup run will be "
                    "refused until it is given the key file (--encrypt --encryption-key-file FILE) or that "
                    "backup is deleted", remote.url)


def latest(remote: Remote, key: UserKey | None) -> Remote:
    """latest/ as a backup writes it; a latest/ made with another key is exit 2, an encrypted
    latest/ without a key too (no plaintext backup replaces it)."""
    if key is None:
        refuse_plaintext_over_encrypted(remote, Writer.MANAGER, encrypted=False)
        return remote
    from ..crypto.remote import for_writing

    return for_writing(remote, key)


def copy_pair(src: Remote, dst: Remote, key: UserKey | None) -> tuple[Remote, Remote]:
    """latest/ read with the key, and the dated backup written under latest/'s record;
    without a key, a dated backup that is encrypted is not replaced by a plain copy."""
    if key is None:
        refuse_plaintext_over_encrypted(dst, Writer.MANAGER, encrypted=False)
        return src, dst
    from ..crypto.remote import for_writing, open_encrypted

    opened = open_encrypted(src, key)
    return opened, for_writing(dst, key, opened)
