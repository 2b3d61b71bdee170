"""A backup's source must be a snapshot, never a VictoriaMetrics data directory.

A data directory changes under a running database (parts merged away, parts.json
rewritten, the indexdb rotated) and also holds what no backup wants (`snapshots/`, which
would duplicate every snapshot, `cache/`, `tmp/`): a copy of it is no consistent backup,
whatever marker it ends with. VictoriaMetrics holds `flock.lock` while it runs, and a
snapshot has none, so the lock tells a live one apart.
"""

from __future__ import annotations

import errno
import fcntl
import os

from ..errors import LockedError, UsageError
from ..names import FLOCK_FILE

_SNAPSHOT_HINT = ("back up a snapshot instead: --storage-data-path {d} with --snapshot-create-url "
                  "(a snapshot made for this backup) or --snapshot-name")


def refuse_data_dir(src_dir: str, force: bool) -> None:
    """A live data directory is refused (exit 4, also with --force: no flag makes it
    consistent); a stopped one (flock.lock beside data/) unless --force (exit 2). A
    snapshot never holds flock.lock."""
    live = _live_data_dir(src_dir)
    if live is not None:
        what = "the data directory" if live == os.path.realpath(src_dir) else f"inside the data directory {live!r}"
        raise LockedError(
            f"--src {src_dir!r} is {what} of a running VictoriaMetrics (it holds {FLOCK_FILE}): "
            f"a copy of it while the database writes is no consistent backup; {_SNAPSHOT_HINT.format(d=live)}"
        )
    lock = os.path.join(src_dir, FLOCK_FILE)
    if not os.path.isfile(lock):
        return
    hint = _SNAPSHOT_HINT.format(d=src_dir)
    # data/ beside flock.lock: 1.145 keeps its indexdb inside data/, 1.79 beside it.
    if force or not os.path.isdir(os.path.join(src_dir, "data")):
        return
    raise UsageError(
        f"--src {src_dir!r} is a VictoriaMetrics data directory ({FLOCK_FILE} beside data/), not a snapshot: "
        f"it also holds snapshots/ and caches, and changes as soon as the database runs; {hint}, "
        "or pass --force if the database is stopped and stays stopped"
    )


def _live_data_dir(src_dir: str) -> str | None:
    """The data directory of a running database that src_dir is or lies in (`<data>/data`,
    say), or None; a snapshot below its `snapshots/` is what a backup should read."""
    real = os.path.realpath(src_dir)
    d = real
    while True:
        lock = os.path.join(d, FLOCK_FILE)
        if os.path.isfile(lock) and _held(lock):
            snapshots = os.path.join(d, "snapshots") + os.sep
            return None if real.startswith(snapshots) else d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _held(path: str) -> bool:
    """Whether another process holds a lock on path. A shared lock is taken and dropped at
    once (no file is created: the path exists); a database starting in that instant would
    retry, as it does after a crashed predecessor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # unreadable, or a symlink: no database holds it through that name
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)
    return False
