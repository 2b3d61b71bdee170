"""Errors with stable exit codes.

Every error a user can cause or fix is a `SnapferryError`: the CLI prints its
message as one line and exits with its `exit_code`, never with a traceback.
"""

from __future__ import annotations

import errno

# Stable exit codes; documented in the README and asserted by tests.
EXIT_OK = 0
EXIT_FAILURE = 1  # runtime failure: I/O, network after retries, remote errors
EXIT_USAGE = 2  # bad arguments, bad URL, unknown scheme, bad paths
EXIT_BAD_BACKUP = 3  # incomplete or inconsistent backup (marker, gaps, overlaps, sizes)
EXIT_LOCKED = 4  # another restore/backup or a running database holds the lock
EXIT_NO_SPACE = 5  # the target filesystem is full
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class SnapferryError(Exception):
    """A failure with a one-sentence message meant for the user."""

    exit_code = EXIT_FAILURE


class UsageError(SnapferryError):
    exit_code = EXIT_USAGE


class BadBackupError(SnapferryError):
    exit_code = EXIT_BAD_BACKUP


class LockedError(SnapferryError):
    exit_code = EXIT_LOCKED


class NoSpaceError(SnapferryError):
    exit_code = EXIT_NO_SPACE


class RemoteError(SnapferryError):
    """A remote operation failed (after retries, where retrying made sense)."""


class TransientRemoteError(RemoteError):
    """A failure worth retrying: throttling, 5xx, resets, short bodies."""


class Interrupted(SnapferryError):
    """The run was stopped by a signal; its state is resumable."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def unreadable_source(path: str, e: OSError) -> SnapferryError:
    """The one message for a source file a backup cannot open or read, with the advice its
    errno calls for. Not retried: a local file that failed will not read on a retry either."""
    advice = {
        errno.EACCES: "fix its permissions, or run snapferry as a user who may read it",
        errno.EPERM: "fix its permissions, or run snapferry as a user who may read it",
        errno.ENOENT: "it vanished during the backup; back up a snapshot, not live files",
        errno.EIO: "the disk under it may be failing; check the kernel log",
    }.get(e.errno or 0, "check the file and the filesystem it is on")
    return SnapferryError(f"cannot read the source file {path!r}: {e.strerror or e}; {advice}")
