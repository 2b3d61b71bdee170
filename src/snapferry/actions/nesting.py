"""Refuse a backup or copy destination that lies inside another complete backup.

A destination below a backup (`s3://b/vm/sub` when `s3://b/vm` is complete) makes its
parts look like the outer backup's: the outer one's restore writes `sub/...` into the
data directory, a copy of it carries them along, and its next backup deletes them. The
other way round, a destination holding backups below it, is `refuse_nested_backups`
in backup.py: it needs the listing, this check does not.
"""

from __future__ import annotations

import os

from ..errors import RemoteError, UsageError
from ..names import ENCRYPTED_COMPLETE_FILE
from ..parts import BACKUP_COMPLETE_FILE
from ..remotes.base import Remote, innermost, local_tree
from ..remotes.retrying import RetryingRemote, with_retries

_MARKERS = (BACKUP_COMPLETE_FILE, ENCRYPTED_COMPLETE_FILE)


def enclosing_backups(dst: Remote) -> list[str]:
    """The URLs of dst's ancestors (nearest first, up to / on fs://, the bucket's root
    elsewhere) that hold a completion marker (a plain or an encrypted backup's)."""
    given = dst
    dst = innermost(dst)  # an encrypted destination lies where its objects do
    tree = local_tree(dst)
    if tree is not None:
        found = []
        d = os.path.realpath(os.path.abspath(tree.root))  # where the parts land, aliases resolved
        while (parent := os.path.dirname(d)) != d:
            d = parent
            if any(os.path.isfile(os.path.join(d, m)) for m in _MARKERS):
                found.append(f"fs://{d}")
        return found
    from ..remotes._cloud import ObjectStore  # here: fs:// runs never load the SDKs' helpers

    if not isinstance(dst, ObjectStore):
        return []  # a backend outside ObjectStore has no prefixes to walk up
    segs = [s for s in dst.prefix.split("/") if s]
    ancestors: list[Remote] = [dst.at("/".join(segs[:i])) for i in range(len(segs) - 1, -1, -1)]
    if isinstance(given, RetryingRemote):  # the probes retried as the run's other requests are
        ancestors = [with_retries(a, given.policy) for a in ancestors]
    try:
        return [a.url for a in ancestors if any(a.has_file(m) for m in _MARKERS)]
    except RemoteError:
        # A missing bucket is said for the URL the user gave, as every other action says it.
        dst.has_file(BACKUP_COMPLETE_FILE)
        raise


def refuse_dst_inside_a_backup(dst: Remote, flag: str = "--dst") -> None:
    """A usage error (exit 2) naming dst and the nearest complete backup that holds it."""
    outer = enclosing_backups(dst)
    if outer:
        raise UsageError(
            f"{flag} {dst.url} lies inside the backup {outer[0]} (it holds {BACKUP_COMPLETE_FILE}), whose "
            "restore would write this backup into the data directory and whose next backup would delete it; "
            "pick a destination outside every backup"
        )
