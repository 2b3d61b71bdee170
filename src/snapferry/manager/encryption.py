"""The manager's encryption (docs/encryption.md): latest/ checked at start; each run's Backup
and Copy apply the key themselves (actions/opening.py: latest/ sealed under its record, each
dated copy taking latest/'s record, so its sealed parts are copied server-side as they are).

A manager without a key never writes over an encrypted backup (latest/ or a dated one):
that run fails (logged, counted as a failed backup) and the backup stays as it was.

The crypto modules (and `cryptography`) are loaded only by a manager given a key file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..crypto import holds_encrypted_backup
from ..errors import SnapferryError
from ..remotes import Remote

if TYPE_CHECKING:
    from ..crypto.keys import UserKey

log = logging.getLogger("snapferry")


def check_at_start(remote: Remote, key: UserKey | None) -> None:
    """At start: a latest/ made with another key is exit 2. Without a key, an encrypted
    latest/ is only warned of: the service stays up (its restore API, its probes), and each run
    fails with the reason until it is given the key or that backup is deleted (Backup and Copy
    refuse it as Writer.MANAGER)."""
    if key is not None:
        from ..crypto.remote import for_writing

        for_writing(remote, key)
        return
    try:
        encrypted = holds_encrypted_backup(remote)
    except SnapferryError as e:  # latest/ cannot be looked at now (not a directory, the store): each run says why
        log.warning("%s: cannot tell whether it holds an encrypted backup (%s)", remote.url, e)
        return
    if encrypted:
        log.warning("%s holds an encrypted backup and this manager has no key: every backup run will be "
                    "refused until it is given the key file (--encrypt --encryption-key-file FILE) or that "
                    "backup is deleted", remote.url)
