"""The restore lock: the same `flock.lock` VictoriaMetrics holds while it runs."""

from __future__ import annotations

import errno
import fcntl
import os

from .errors import LockedError
from .names import FLOCK_FILE


class DirLock:
    """An exclusive, non-blocking flock on <dir>/flock.lock, released on close.

    The kernel drops the lock when the process dies, so a crash never leaves a
    stale lock behind.
    """

    def __init__(self, directory: str, what: str) -> None:
        self.path = os.path.join(directory, FLOCK_FILE)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(
                    f"{directory!r} is locked by another process (a running VictoriaMetrics or "
                    f"another {what}); stop it first, then rerun"
                ) from e
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
