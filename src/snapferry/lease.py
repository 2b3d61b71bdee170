"""The backup lease: one writer per backup location, on every backend.

A lease object (`snapferry_lock.ignore`, ignored by vmbackup/vmrestore) is
created atomically (O_EXCL on fs://, If-None-Match / generation 0 / no
overwrite on the clouds) and renewed while the backup runs. A lease whose
holder died is taken over: on the same host when its PID is gone, anywhere
once it has expired.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType

from .errors import LockedError, SnapferryError
from .remotes.base import Remote

log = logging.getLogger("snapferry")

LEASE_FILE = "snapferry_lock.ignore"
TTL_SECONDS = 120.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BackupLease:
    def __init__(self, remote: Remote, what: str, ttl: float = TTL_SECONDS) -> None:
        self.remote = remote
        self.what = what
        self.ttl = ttl
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "host": self.host, "pid": os.getpid(), "what": self.what,
             "expires_at": time.time() + self.ttl},
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
                    f"on another host, rerun after its lease expires at {until}"
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
        pid = holder.get("pid")
        return holder.get("host") == self.host and isinstance(pid, int) and not _pid_alive(pid)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                holder = self._read_holder()
                if holder is not None and holder.get("owner") != self.owner:
                    # Paused past the TTL and taken over: never overwrite the new holder.
                    self.lost = True
                    return
                self.remote.write_file(LEASE_FILE, self._body())
            except SnapferryError as e:
                log.warning("cannot renew the lease of %s: %s", self.remote.url, e)

    def check(self) -> None:
        """Raise if another writer took the lease over; call before marking a backup complete."""
        if self.lost:
            raise LockedError(
                f"the lease of {self.remote.url} was taken over by another writer while this one paused; "
                "rerun once it has finished"
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
        self.release()
