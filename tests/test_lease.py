from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest

from snapferry.errors import LockedError
from snapferry.lease import BackupLease, Holder, _start_time, this_process
from snapferry.names import LEASE_FILE
from snapferry.remotes.fs import FsRemote
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


def _dead_process() -> Holder:
    """The identity a real process had, after it exited."""
    child = subprocess.Popen(["sleep", "60"])
    start = _start_time(child.pid)
    assert start > 0
    child.kill()
    child.wait()
    return dataclasses.replace(this_process(), pid=child.pid, start_time=start)


def _lease(holder: Holder, expires_in: float = 3600) -> bytes:
    return json.dumps({"owner": "x", **dataclasses.asdict(holder), "what": "backup",
                       "expires_at": time.time() + expires_in}).encode()


def test_lease_of_a_dead_process_is_taken_over(any_remote: RemoteFactory) -> None:
    spec = any_remote()
    spec.raw_put(LEASE_FILE, _lease(_dead_process()))
    with BackupLease(spec.open(), "backup") as lease:
        assert json.loads(spec.raw_get(LEASE_FILE))["owner"] == lease.owner


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    """The holder's pid now runs another process (another start time): the holder is gone."""
    root = tmp_path / "bk"
    me = this_process()
    FsRemote(str(root)).write_file(LEASE_FILE, _lease(dataclasses.replace(me, start_time=me.start_time + 1)))
    with BackupLease(FsRemote(str(root)), "backup") as lease:
        assert json.loads((root / LEASE_FILE).read_bytes())["owner"] == lease.owner


@pytest.mark.parametrize("change", [
    {"pid_ns": 1},  # another PID namespace: its pids mean nothing here
    {"boot_id": "00000000-0000-0000-0000-000000000000"},  # another kernel (or an earlier boot)
    {"host": "elsewhere"},
    {"start_time": 0},  # a holder that could not say when it started
])
def test_a_holder_not_provably_gone_keeps_its_live_lease(tmp_path: Path, change: dict[str, object]) -> None:
    root = tmp_path / "bk"
    holder = dataclasses.replace(_dead_process(), **change)  # type: ignore[arg-type]
    FsRemote(str(root)).write_file(LEASE_FILE, _lease(holder))
    with pytest.raises(LockedError, match="another backup is writing"):
        BackupLease(FsRemote(str(root)), "backup").acquire()
    # Once it expires, it is taken over.
    FsRemote(str(root)).write_file(LEASE_FILE, _lease(holder, expires_in=-1))
    with BackupLease(FsRemote(str(root)), "backup"):
        pass


def test_an_old_lease_without_identity_waits_for_expiry(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    old = {"owner": "x", "host": this_process().host, "pid": _dead_process().pid, "what": "backup",
           "expires_at": time.time() + 3600}
    FsRemote(str(root)).write_file(LEASE_FILE, json.dumps(old).encode())
    with pytest.raises(LockedError):
        BackupLease(FsRemote(str(root)), "backup").acquire()


def test_check_reads_the_lease_object_itself(tmp_path: Path) -> None:
    """No renewal has run yet, so no flag is set: check() must find the takeover in the object."""
    root = tmp_path / "bk"
    lease = BackupLease(FsRemote(str(root)), "backup", ttl=3600)
    lease.acquire()
    try:
        lease.check()
        (root / LEASE_FILE).write_bytes(_lease(this_process()))  # another owner took it
        with pytest.raises(LockedError, match="taken over"):
            lease.check()
        assert json.loads((root / LEASE_FILE).read_bytes())["owner"] == "x"
        (root / LEASE_FILE).unlink()  # taken over and released meanwhile
        with pytest.raises(LockedError, match="taken over"):
            lease.check()
    finally:
        lease.release()
    assert not (root / LEASE_FILE).exists()  # never recreated by the one that lost it


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


def test_this_process_names_the_host_as_gethostname_does() -> None:
    """Other hosts' leases are told apart by this name: it must be the one socket reports."""
    import socket

    assert this_process().host == socket.gethostname()
