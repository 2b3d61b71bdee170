"""The backup lease: one writer per backup location, on every backend.

A lease object (`snapferry_lock.ignore`, ignored by vmbackup/vmrestore) is
created atomically (O_EXCL on fs://, If-None-Match / generation 0 / no
overwrite on the clouds) and renewed while the backup runs.

A lease names its holder by host, boot id, PID namespace, pid and the process's
start time. It is taken over at once only when all of that proves the holder is
gone: same kernel (boot id) and same PID namespace, and that pid is not running
or is another process (a different start time). A holder in another container,
on another machine or from an earlier boot is waited for until its lease
expires. The holder itself reads the lease object before it deletes anything and
before it writes the completion marker, and stops when it is no longer the owner.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from types import TracebackType

from .errors import Interrupted, LockedError, RemoteError, SnapferryError
from .names import LEASE_FILE
from .remotes.base import Remote

log = logging.getLogger("snapferry")

TTL_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease: enough to tell, on the same kernel, whether it still runs."""

    host: str
    boot_id: str
    pid_ns: int
    pid: int
    start_time: int  # clock ticks after boot (/proc/PID/stat field 22); 0 when unknown


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _start_time(pid: int) -> int:
    """The process's start time, or 0 when it does not exist (in this PID namespace)."""
    stat = _read(f"/proc/{pid}/stat")
    # Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return 0


def this_process() -> Holder:
    try:
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = 0
    pid = os.getpid()
    # uname's nodename is what gethostname(2) returns on Linux, without importing socket
    # (selectors, array) into an fs:// backup that opens no connection.
    return Holder(
        os.uname().nodename, _read("/proc/sys/kernel/random/boot_id").strip(), pid_ns, pid, _start_time(pid)
    )


def provably_gone(holder: Holder, me: Holder) -> bool:
    """True only when the holder ran on this kernel, in this PID namespace, and its process is gone."""
    if not (holder.boot_id and holder.pid_ns and holder.start_time and holder.pid > 0):
        return False
    if (holder.host, holder.boot_id, holder.pid_ns) != (me.host, me.boot_id, me.pid_ns):
        return False
    return _start_time(holder.pid) != holder.start_time


def _int(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"not an integer: {v!r}")
    return v


class BackupLease:
    """The lease of one backup location. `on_lost` runs when the renew thread finds the lease
    taken over (actions pass their transfers' stop event, so uploads end promptly)."""

    def __init__(
        self, remote: Remote, what: str, ttl: float | None = None, on_lost: threading.Event | None = None
    ) -> None:
        self.remote = remote
        self.what = what
        self.ttl = TTL_SECONDS if ttl is None else ttl
        self.owner = uuid.uuid4().hex
        self.me = this_process()
        self.host = self.me.host
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, **asdict(self.me), "what": self.what, "expires_at": time.time() + self.ttl},
        ).encode()

    def acquire(self) -> None:
        for _ in range(3):
            created = self.remote.create_file_exclusive(LEASE_FILE, self._body())
            holder = None if created else self._read_holder()
            # A lost reply to our own create makes the SDK retry and see "exists": still ours.
            if created or (holder is not None and holder.get("owner") == self.owner):
                self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
                self._thread.start()
                return
            if holder is not None and not self._stale(holder):
                exp = holder.get("expires_at")
                until = time.strftime("%H:%M:%S", time.localtime(exp if isinstance(exp, int | float) else 0))
                raise LockedError(
                    f"another {holder.get('what', 'backup')} is writing to {self.remote.url} (host "
                    f"{holder.get('host')}, pid {holder.get('pid')}); wait for it to finish, or if it died "
                    f"in another container or on another host, rerun after its lease expires at {until}"
                )
            log.warning("taking over the stale lease of %s", self.remote.url)
            self.remote.delete_file(LEASE_FILE)
        raise LockedError(f"cannot take the lease of {self.remote.url}: another writer keeps taking it")

    def _read_holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.remote.read_file(LEASE_FILE))
        except (SnapferryError, ValueError):
            return None  # gone meanwhile, or garbage: treat as stale
        return data if isinstance(data, dict) else None

    def _stale(self, holder: dict[str, object]) -> bool:
        expires = holder.get("expires_at")
        if not isinstance(expires, int | float) or expires < time.time():
            return True
        try:
            h = Holder(
                str(holder["host"]), str(holder["boot_id"]), _int(holder["pid_ns"]), _int(holder["pid"]),
                _int(holder["start_time"]),
            )
        except (KeyError, ValueError):
            return False  # a holder that does not say enough (an older snapferry): wait for expiry
        return provably_gone(h, self.me)

    def _owned(self) -> bool:
        """Read the lease object itself: is this run still its owner?"""
        if not self.remote.has_file(LEASE_FILE):
            return False
        holder = self._read_holder()
        return holder is not None and holder.get("owner") == self.owner

    def _lose(self) -> None:
        self.lost = True
        if self._on_lost is not None:
            self._on_lost.set()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not self._owned():
                    # Paused past the TTL and taken over: never overwrite the new holder.
                    self._lose()
                    return
                self.remote.write_file(LEASE_FILE, self._body())
            except SnapferryError as e:
                log.warning("cannot renew the lease of %s: %s", self.remote.url, e)

    def check(self) -> None:
        """Raise unless this run still owns the lease, read from the lease object itself.

        Called before deleting parts and before writing the completion marker: a flag
        of the renew thread alone could be late (a writer paused past the TTL)."""
        if self.lost or not self._owned():
            self._lose()
            raise LockedError(
                f"the lease of {self.remote.url} was taken over by another writer while this "
                f"{self.what} paused, so it stopped without marking the backup complete; rerun once "
                "the other writer has finished"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            holder = self._read_holder()
            if holder is not None and holder.get("owner") == self.owner:
                with contextlib.suppress(SnapferryError):
                    self.remote.delete_file(LEASE_FILE)

    def __enter__(self) -> BackupLease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if isinstance(exc, SnapferryError) and not isinstance(exc, LockedError | Interrupted):
                # A writer that resumed after a takeover can trip over the new writer's changes
                # (a directory it removed) before it reads the lease: say what really happened.
                with contextlib.suppress(RemoteError):
                    self.check()
        finally:
            self.release()
