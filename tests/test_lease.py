from __future__ import annotations

import json
import time

import pytest

from snapferry.errors import LockedError
from snapferry.lease import LEASE_FILE, BackupLease
from tests.servers import RemoteFactory


def test_one_writer_at_a_time(any_remote: RemoteFactory) -> None:
    spec = any_remote()
    remote = spec.open()
    first = BackupLease(remote, "backup")
    first.acquire()
    try:
        with pytest.raises(LockedError, match="another backup is writing"):
            BackupLease(spec.open(), "backup").acquire()
        assert json.loads(spec.raw_get(LEASE_FILE))["owner"] == first.owner
    finally:
        first.release()
    with pytest.raises(FileNotFoundError if spec.server is None else Exception):
        spec.raw_get(LEASE_FILE)
    with BackupLease(spec.open(), "copy"):
        pass


def test_lease_of_a_dead_process_is_taken_over(any_remote: RemoteFactory) -> None:
    import socket

    spec = any_remote()
    dead = {"owner": "x", "host": socket.gethostname(), "pid": 2**22 + 12345, "what": "backup",
            "expires_at": time.time() + 3600}
    spec.raw_put(LEASE_FILE, json.dumps(dead).encode())
    with BackupLease(spec.open(), "backup") as lease:
        assert json.loads(spec.raw_get(LEASE_FILE))["owner"] == lease.owner


def test_expired_lease_of_another_host_is_taken_over(any_remote: RemoteFactory) -> None:
    spec = any_remote()
    old = {"owner": "x", "host": "elsewhere", "pid": 1, "what": "backup", "expires_at": time.time() - 1}
    spec.raw_put(LEASE_FILE, json.dumps(old).encode())
    with BackupLease(spec.open(), "backup") as lease:
        assert json.loads(spec.raw_get(LEASE_FILE))["owner"] == lease.owner
    live = {**old, "expires_at": time.time() + 3600}
    spec.raw_put(LEASE_FILE, json.dumps(live).encode())
    with pytest.raises(LockedError, match="host elsewhere"):
        BackupLease(spec.open(), "backup").acquire()
