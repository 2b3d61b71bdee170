"""No snapshot outlives the run that made it by more than one run (snapguard.py), against a real
victoria-metrics: a data path that cannot be used fails before /snapshot/create is called, and a
run SIGKILLed while VictoriaMetrics answers /snapshot/create (held up by tests/faultproxy.py)
has its snapshot deleted by the next run, for `snapferry backup` and for the manager, while
snapshots other tools made before and after stay."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapferry.manager.service import Manager, ManagerConfig
from tests.faultproxy import FaultPlan, FaultProxy, Request
from tests.vm import VMServer, run_snapferry, snapferry_command

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]


class Front:
    """faultproxy before victoria-metrics: records each request's path; `hold` stalls /snapshot/create
    after forwarding it (VictoriaMetrics makes the snapshot; the client waits for the answer)."""

    def __init__(self, vm: VMServer) -> None:
        self.paths: list[str] = []
        self.proxy = FaultProxy(vm.url).start()
        self.release()

    def _seen(self, req: Request) -> bool:
        self.paths.append(req.path)
        return req.path == "/snapshot/create"

    def hold(self) -> None:
        self.proxy.set_plan(FaultPlan(rate=1.0, kinds=("stall",), stall_seconds=120, match=self._seen))

    def release(self) -> None:
        self.proxy.set_plan(FaultPlan(rate=1.0, kinds=("stall",), match=lambda r: self._seen(r) and False))

    @property
    def create_url(self) -> str:
        return f"{self.proxy.endpoint}/snapshot/create"


@pytest.fixture
def front() -> Iterator[Callable[[VMServer], Front]]:
    made: list[Front] = []

    def make(vm: VMServer) -> Front:
        made.append(Front(vm))
        return made[-1]

    yield make
    for f in made:
        f.proxy.stop()


def fed(vm_server: Callable[..., VMServer], tmp_path: Path, version: str) -> VMServer:
    vm = vm_server(tmp_path / "vmdata", version=version)
    vm.import_prometheus('up{job="leak"} 1\n')
    vm.force_flush()
    return vm


def ro_view(src: Path, at: Path) -> Path:
    """A read-only bind mount of `src` (a sidecar's read-only volume)."""
    at.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(at)], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(at)], check=True)
    return at


def test_an_unusable_data_path_fails_before_the_snapshot_is_made(
        vm_server: Callable[..., VMServer], front: Callable[[VMServer], Front], tmp_path: Path) -> None:
    vm = fed(vm_server, tmp_path, "1.79.5")
    other_tool = vm.snapshot_create()
    f = front(vm)
    elsewhere = tmp_path / "other-vm"  # another database's data directory
    (elsewhere / "snapshots").mkdir(parents=True)
    (elsewhere / "flock.lock").touch()
    (tmp_path / "empty").mkdir()  # a volume not mounted: an empty directory
    ro = ro_view(vm.storage_data_path, tmp_path / "ro")
    try:
        for path, words in [(tmp_path / "typo", "is not a directory"), (tmp_path / "empty", "not the data directory"),
                            (elsewhere, "is not its -storageDataPath"), (ro, "make --storage-data-path writable")]:
            proc = run_snapferry("backup", "--storage-data-path", str(path), "--snapshot-create-url", f.create_url,
                                 "--dst", f"fs://{tmp_path / 'b'}", check=False)
            assert proc.returncode == 2, (path, proc.stderr)
            assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            mgr = Manager(ManagerConfig(storage_data_path=str(path), snapshot_create_url=f.create_url,
                                        dst=f"fs://{tmp_path / 'm'}"))
            try:
                res = mgr.run_once()
            finally:
                mgr.close()
            assert not res.ok and res.error is not None and words in res.error, res.error
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert "/snapshot/create" not in f.paths, f.paths  # no run asked for a snapshot
    assert vm.snapshot_list() == [other_tool]


def wait_for(cond: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.parametrize("who", ["backup", "manager"])
def test_a_run_killed_mid_create_has_its_snapshot_deleted_by_the_next(
        vm_server: Callable[..., VMServer], front: Callable[[VMServer], Front], vm_version: str, tmp_path: Path,
        who: str) -> None:
    vm = fed(vm_server, tmp_path, vm_version)
    before = vm.snapshot_create()  # another tool's, made earlier: it stays
    f = front(vm)
    f.hold()
    data = str(vm.storage_data_path)
    if who == "backup":
        argv = ["backup", "--storage-data-path", data, "--snapshot-create-url", f.create_url, "--dst",
                f"fs://{tmp_path / 'b'}"]
    else:
        argv = ["manager", "--storage-data-path", data, "--snapshot-create-url", f.create_url, "--dst",
                f"fs://{tmp_path / 'b'}", "--run-on-start", "--disable-scheduled-backups", "--http-listen-addr",
                "127.0.0.1:0"]
    proc = subprocess.Popen([*snapferry_command(), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(vm.snapshot_list()) == 2 or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        proc.kill()  # SIGKILL while the answer to /snapshot/create is held up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    leaked = [n for n in vm.snapshot_list() if n != before]
    assert len(leaked) == 1  # the killed run's snapshot exists, and no record names it
    time.sleep(1.1)  # a later snapshot of another tool, in the killed call's timeout window
    after = vm.snapshot_create()
    f.release()
    # the next run (of the other command, too: the record is the data path's)
    nxt = run_snapferry("backup", "--storage-data-path", data, "--snapshot-create-url", f.create_url, "--dst",
                        f"fs://{tmp_path / 'b2'}", "--progress", "off", check=False)
    assert nxt.returncode == 0, nxt.stderr
    assert f"deleting snapshot {leaked[0]}" in nxt.stderr, nxt.stderr
    assert sorted(vm.snapshot_list()) == sorted([before, after])
    assert not list(vm.storage_data_path.glob("*snapferry*"))  # no record left


def test_a_live_run_s_snapshot_is_left_alone_and_an_old_record_is_honoured(
        vm_server: Callable[..., VMServer], front: Callable[[VMServer], Front], tmp_path: Path) -> None:
    """Two runs on one data path: the second never deletes the snapshot the first (alive, held
    up in /snapshot/create) made; a record of an older snapferry (just a name) is honoured."""
    vm = fed(vm_server, tmp_path, "1.79.5")
    old = vm.snapshot_create()
    (vm.storage_data_path / "snapferry_snapshot.ignore").write_text(old)  # an older snapferry's record
    f = front(vm)
    f.hold()
    data = str(vm.storage_data_path)
    first = subprocess.Popen([*snapferry_command(), "backup", "--storage-data-path", data, "--snapshot-create-url",
                              f.create_url, "--dst", f"fs://{tmp_path / 'b1'}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        # the first run deleted the old record's snapshot, then made its own (held up)
        assert wait_for(lambda: (old not in vm.snapshot_list() and len(vm.snapshot_list()) == 1)
                        or first.poll() is not None, 120)
        assert first.poll() is None, first.stderr.read() if first.stderr else b""
        held = vm.snapshot_list()[0]
        second = run_snapferry("backup", "--storage-data-path", data, "--snapshot-create-url", vm.snapshot_create_url,
                               "--dst", f"fs://{tmp_path / 'b2'}", "--progress", "off", check=False)
        assert second.returncode == 0, second.stderr
        assert vm.snapshot_list() == [held]  # the live run's snapshot stays
    finally:
        first.kill()
        first.wait(timeout=30)
    f.release()
    third = run_snapferry("backup", "--storage-data-path", data, "--snapshot-create-url", vm.snapshot_create_url,
                          "--dst", f"fs://{tmp_path / 'b3'}", "--progress", "off", check=False)
    assert third.returncode == 0, third.stderr
    assert vm.snapshot_list() == []


def test_a_full_data_disk_fails_before_the_snapshot_with_exit_5(
        vm_server: Callable[..., VMServer], front: Callable[[VMServer], Front], tmp_path: Path) -> None:
    data = tmp_path / "vmdata"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(data)], check=True)
    try:
        vm = vm_server(data)
        f = front(vm)
        with open(data / "filler", "wb") as filler:  # the database's disk fills up
            try:
                while True:
                    filler.write(b"\0" * (1 << 20))
                    filler.flush()
            except OSError:
                pass
        proc = run_snapferry("backup", "--storage-data-path", str(data), "--snapshot-create-url", f.create_url,
                             "--dst", f"fs://{tmp_path / 'b'}", check=False)
        assert proc.returncode == 5, proc.stderr
        assert "is full" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert "/snapshot/create" not in f.paths and vm.snapshot_list() == []
        vm.stop()
    finally:
        subprocess.run(["umount", "-l", str(data)], check=True)
