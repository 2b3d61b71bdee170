"""The snapshot a run makes, recorded before it exists, so no snapshot outlives the next run.

A run that creates a snapshot (`backup --snapshot-create-url`, each manager run)
first checks that --storage-data-path is the data directory of the VictoriaMetrics
it calls (it exists, holds `flock.lock` and `snapshots/`, lists what the API lists,
and takes a file: so a typo, an unmounted or read-only volume fails before a snapshot
is made). It then writes a record in the data directory, fsynced, before calling
/snapshot/create: the time of the call and the snapshots that existed before it. Once
VictoriaMetrics answers, the snapshot's name is appended. The record is flocked for
the whole run, so a live run's record is never taken for a dead one's.

The next run (of either command) finds records nobody holds: it deletes the snapshot a
record names, or, when the run was killed before the answer came, the first snapshot
made after the call started (VictoriaMetrics makes them one at a time and numbers them
in order) if it is named with a time between the call's start and its timeout and was
not listed before. A snapshot of another tool was listed before, or came after ours; the
one risk left is another tool's call landing between our listing and our own call
(milliseconds), or, if VictoriaMetrics never got the killed call, another tool's
snapshot in the seconds of its timeout. A call that certainly did nothing (refused,
answered with an error) drops its record at once.

The record lives in the data directory (not in the manager's state) because it must
be where the snapshot is: the backup command has no state directory, a sidecar and
the database share that volume, and a record there cannot outlive the data it is about.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import snapshot
from .durable import fsync_dir
from .errors import NoSpaceError, SnapferryError, UsageError
from .names import SNAPSHOT_RECORD_FILE

log = logging.getLogger("snapferry")

_PREFIX = SNAPSHOT_RECORD_FILE.removesuffix(".ignore")  # snapferry_snapshot
_TMP = ".snapferry_snapshot-"
_MARGIN = timedelta(seconds=2)  # VictoriaMetrics stamps names in whole seconds


@dataclass
class SnapshotGuard:
    storage_data_path: str
    create_url: str
    delete_base: str | None = None
    tls: snapshot.SnapshotTLS = field(default_factory=snapshot.SnapshotTLS)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _fd: int = -1
    _path: str = ""

    def check(self) -> None:
        """What can be checked without VictoriaMetrics: the URL, the TLS settings, the directory."""
        snapshot.check_url(self.create_url)
        self.tls.context(self.create_url)
        d = self.storage_data_path
        if not os.path.isdir(d):
            raise UsageError(f"--storage-data-path {d} is not a directory; name VictoriaMetrics' -storageDataPath "
                             "(is the volume mounted here?)")
        if not os.path.exists(os.path.join(d, "flock.lock")) or not os.path.isdir(os.path.join(d, "snapshots")):
            raise UsageError(f"--storage-data-path {d} holds no flock.lock and snapshots/: it is not the data "
                             "directory of a running VictoriaMetrics; name its -storageDataPath")

    def create(self) -> str:
        """Clean up what killed runs left, record the intent, create the snapshot, record its name."""
        self.check()
        self.cleanup()
        before = snapshot.list_names(self.create_url, self.tls)
        here = set(os.listdir(os.path.join(self.storage_data_path, "snapshots")))
        missing = sorted(set(before) - here)
        if missing:
            raise UsageError(
                f"the VictoriaMetrics at {snapshot.shown(self.create_url)} lists snapshots "
                f"{', '.join(missing[:3])} that {self.storage_data_path}/snapshots lacks: "
                "--storage-data-path is not its -storageDataPath"
            )
        started = self.now().replace(microsecond=0)
        self._open_record({"pending_since": started.strftime("%Y%m%d%H%M%S"),
                           "timeout": snapshot.CREATE_TIMEOUT, "before": before})
        try:
            name = snapshot.create(self.create_url, self.tls)
        except snapshot.NoEffect:
            self.release(drop=True)  # refused or answered with an error: no snapshot was made
            raise
        except BaseException:
            self.release(drop=False)  # VictoriaMetrics may still make it: the next run looks
            raise
        try:
            os.write(self._fd, (json.dumps({"snapshot": name}) + "\n").encode())
            os.fsync(self._fd)
        except OSError:
            self.release(drop=False)  # the intent line stays: the next run finds the snapshot by its time
            raise
        return name

    def delete_url(self, name: str) -> str:
        return snapshot.delete_url(self.create_url, self.delete_base, name)

    def delete(self, name: str) -> None:
        """Delete the snapshot and then the record (kept when the delete fails: the next run retries)."""
        snapshot.delete(self.delete_url(name), self.tls)
        self.release(drop=True)

    def release(self, drop: bool) -> None:
        if self._fd < 0:
            return
        if drop:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            fsync_dir(self.storage_data_path)
        os.close(self._fd)
        self._fd = -1

    def _open_record(self, head: dict[str, object]) -> None:
        """A new record: written and locked under a temporary name, renamed into place (the
        lock stays with the inode), so a record is never seen empty or unlocked while its run lives."""
        token = secrets.token_hex(6)
        tmp = os.path.join(self.storage_data_path, f"{_TMP}{token}.tmp")
        path = os.path.join(self.storage_data_path, f"{_PREFIX}-{token}.ignore")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_APPEND, 0o644)
        except OSError as e:
            raise _unwritable(tmp, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (json.dumps(head) + "\n").encode())
            os.fsync(fd)
            os.rename(tmp, path)
            fsync_dir(self.storage_data_path)
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _unwritable(path, e) from e
        self._fd, self._path = fd, path

    def cleanup(self) -> list[str]:
        """Delete the snapshots of runs that died (records nobody holds); returns their names."""
        d = self.storage_data_path
        deleted: list[str] = []
        paths = glob.glob(os.path.join(glob.escape(d), f"{_PREFIX}*.ignore"))
        paths += glob.glob(os.path.join(glob.escape(d), f"{_TMP}*.tmp"))
        for path in sorted(paths):
            try:
                # O_NONBLOCK: a FIFO under a record's name must not hang every run; it is skipped.
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    log.warning("ignoring %s: not a regular file, so no snapshot record of snapferry's", path)
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run holds it
                with os.fdopen(os.dup(fd), "rb") as f:
                    text = f.read(1 << 20).decode("utf-8", "replace")
                if not path.endswith(".tmp"):
                    deleted += self._clean_one(path, text)
                os.unlink(path)
                fsync_dir(d)
            finally:
                os.close(fd)
        return deleted

    def _clean_one(self, path: str, text: str) -> list[str]:
        head, named = _parse(text)
        listed = snapshot.list_names(self.create_url, self.tls)
        if named is not None:
            victims = [named] if named in listed else []
        elif head is not None:
            since = datetime.strptime(str(head["pending_since"]), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
            timeout, listed_before = head.get("timeout", snapshot.CREATE_TIMEOUT), head.get("before") or []
            assert isinstance(timeout, (int, float)) and isinstance(listed_before, list)  # _sane_intent
            until = since + timedelta(seconds=timeout)
            before = {str(n) for n in listed_before}
            new = [n for n in listed if n not in before and _within(n, since - _MARGIN, until + _MARGIN)]
            # VictoriaMetrics makes snapshots one at a time and numbers them in order (the hex
            # suffix): the killed call's is the first made after it; later ones are other tools'.
            victims = sorted(new, key=_order)[:1]
        else:
            log.warning("ignoring the unreadable snapshot record %s", path)
            return []
        for name in victims:
            log.info("deleting snapshot %s, left by a run that was interrupted (%s)", name, os.path.basename(path))
            snapshot.delete(self.delete_url(name), self.tls)
        return victims


class SnapshotLeft(SnapferryError):
    """The snapshot could not be deleted; its record stays, so the next run deletes it."""

    def __init__(self, name: str, url: str, cause: SnapferryError) -> None:
        super().__init__(str(cause))
        self.name, self.url, self.cause = name, url, cause


@contextlib.contextmanager
def made_snapshot(guard: SnapshotGuard, *, warn_after_failure: bool = False) -> Iterator[str]:
    """Create the snapshot, yield its name, delete it on exit, also when the body fails: a
    snapshot left behind pins its parts on disk. A failed delete raises SnapshotLeft; with
    `warn_after_failure`, when the body failed it is a warning instead, so the body's error
    is the one the user sees."""
    name = guard.create()
    log.info("created snapshot %s", name)
    try:
        yield name
    except BaseException:
        _remove(guard, name, warn=warn_after_failure)
        raise
    _remove(guard, name, warn=False)


def _remove(guard: SnapshotGuard, name: str, *, warn: bool) -> None:
    try:
        guard.delete(name)
    except SnapferryError as e:
        guard.release(drop=False)  # a failed delete keeps the record: the next run retries
        url = snapshot.shown(guard.delete_url(name))
        if not warn:
            raise SnapshotLeft(name, url, e) from e
        log.warning("the snapshot %s is left: %s; delete it with `curl '%s'`", name, e, url)
        return
    except BaseException:
        guard.release(drop=False)
        raise
    log.info("deleted snapshot %s", name)


def _unwritable(path: str, e: OSError) -> SnapferryError:
    """The record cannot be written: no snapshot is made. A full disk is exit 5, else a usage error."""
    why = ("snapferry records there the snapshot it is about to create, so that a killed run's snapshot "
           "is deleted by the next")
    if e.errno == errno.ENOSPC:
        return NoSpaceError(f"cannot write {path}: the disk of --storage-data-path is full ({why}); free space")
    return UsageError(f"cannot write {path}: {e.strerror}; {why}: make --storage-data-path writable")


# A record's timeout beyond this was not written by snapferry (its calls wait CREATE_TIMEOUT):
# trusting it would take any later snapshot, another tool's too, for the killed run's.
_MAX_RECORD_TIMEOUT = 3600.0


def _sane_intent(row: dict[str, object]) -> bool:
    """An intent line a snapferry wrote: a finite timeout in range and a list of names before."""
    timeout, before = row.get("timeout", snapshot.CREATE_TIMEOUT), row.get("before")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        return False
    if not 0 <= timeout <= _MAX_RECORD_TIMEOUT:  # NaN fails this too
        return False
    return before is None or (isinstance(before, list) and all(isinstance(n, str) for n in before))


def _within(name: str, lo: datetime, hi: datetime) -> bool:
    t = snapshot.snapshot_time(name)
    return t is not None and lo <= t <= hi


def _order(name: str) -> tuple[datetime, int]:
    t = snapshot.snapshot_time(name)
    assert t is not None
    return t, int(name.partition("-")[2], 16)


def _parse(text: str) -> tuple[dict[str, object] | None, str | None]:
    """(the intent line, the snapshot name) of a record; a torn last line is skipped. A
    record of an older snapferry holds just a name."""
    head: dict[str, object] | None = None
    named: str | None = None
    for line in text.splitlines():
        line = line.strip()
        try:
            row = json.loads(line)
        except ValueError:
            with contextlib.suppress(SnapferryError):
                snapshot.validate_name(line)
                if snapshot.snapshot_time(line) is not None:
                    named = line
            continue
        if isinstance(row, dict) and "pending_since" in row and snapshot.snapshot_time(
                f"{row['pending_since']}-0") is not None and _sane_intent(row):
            head = row
        elif isinstance(row, dict) and isinstance(row.get("snapshot"), str):
            with contextlib.suppress(SnapferryError):
                snapshot.validate_name(row["snapshot"])
                named = row["snapshot"]
    return head, named
