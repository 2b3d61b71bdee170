"""Refuse a source that holds no complete backup, before restore or copy reads it.

One rule for both actions, so a mistyped URL and an interrupted backup get the same
two answers wherever they are met.
"""

from __future__ import annotations

from ..errors import BadBackupError, UsageError
from ..names import BACKUP_COMPLETE_FILE, ENCRYPTED_COMPLETE_FILE, ENCRYPTION_RECORD_FILE
from ..remotes.base import Remote


def refuse_incomplete(src: Remote, what_to_do: str) -> None:
    """BadBackupError unless src holds the completion marker. A place that holds nothing
    at all is a mistyped URL; one that holds anything (a backup killed before its first
    part leaves its lease, maybe metadata) is an incomplete backup: `what_to_do` says how on."""
    if src.has_file(BACKUP_COMPLETE_FILE):
        return
    if src.has_file(ENCRYPTED_COMPLETE_FILE) or src.has_file(ENCRYPTION_RECORD_FILE):
        raise UsageError(encrypted_message(src))
    if not src.list_objects():
        raise BadBackupError(f"{src.url} holds no backup; check the --src URL")
    raise BadBackupError(f"{src.url} has no {BACKUP_COMPLETE_FILE}: the backup is incomplete{what_to_do}")


def encrypted_message(src: Remote) -> str:
    """What a command run without the key of an encrypted backup says (exit 2)."""
    return (f"{src.url} is an encrypted backup; give its key with --encryption-key-file FILE "
            "(or SNAPFERRY_ENCRYPTION_KEY_FILE naming the file)")
