"""Where an action's remotes come from: a URL it opens for the run and closes after it, or
a remote the caller lends it (the manager's shared remotes of latest/ and the dated
backups), which it never closes; and how the run's key shows them.

The crypto modules (and `cryptography`) are loaded only by a run given a key.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..remotes.base import Remote
from ..settings import RunSettings

if TYPE_CHECKING:
    from ..crypto.keys import UserKey
    from ..remotes import RemoteOptions

# A URL (opened and closed by the action) or an opened remote (lent: left open).
Where = str | Remote


def opened(stack: contextlib.ExitStack[bool | None], where: Where, settings: RunSettings,
           options: RemoteOptions | None = None) -> Remote:
    """The remote `where` names; one opened here is closed when `stack` closes."""
    if not isinstance(where, str):
        return where
    remote = settings.open(where, options)
    stack.callback(remote.close)
    return remote


def reading(remote: Remote, key: UserKey | None) -> Remote:
    """A reader's view of `remote`: decrypted with `key`, or as it is without one."""
    if key is None:
        return remote
    from ..crypto.remote import open_encrypted

    return open_encrypted(remote, key)


def writing(remote: Remote, key: UserKey | None, source: Remote | None = None, *, replace: bool = False) -> Remote:
    """A writer's view of `remote`: encrypted under `key` with the record of `source` (a
    reader's view of the backup whose parts it copies as they are), or as it is without a key.
    `replace`: a backup another key made there may be replaced (crypto.remote.for_writing)."""
    if key is None:
        return remote
    from ..crypto.remote import EncryptedRemote, for_writing

    assert source is None or isinstance(source, EncryptedRemote), "a keyed run reads its source with the key"
    return for_writing(remote, key, source, replace=replace)


def refuse_encrypted(remote: Remote) -> None:
    """A backup read without --encryption-key-file that is an encrypted one: exit 2, saying so."""
    from ..names import ENCRYPTED_COMPLETE_FILE
    from .complete import encrypted_message

    if remote.has_file(ENCRYPTED_COMPLETE_FILE):
        raise UsageError(encrypted_message(remote))
