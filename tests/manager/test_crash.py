"""Crash safety of manager runs: SIGKILL at seeded moments, restart, and two managers on one dst.

Every test with a database runs on VictoriaMetrics 1.79.5 and 1.145.0 (`vm_version`), whole.
After a kill: no backup is marked complete unless it holds exactly the parts of
a complete latest/ (of the killed run, or of an earlier one), every complete
backup covers its files; the restarted run finishes the work, deletes the
snapshot the killed run left, and its backups restore to the samples ingested.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from snapferry.errors import UsageError
from snapferry.manager.layout import BackupType
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, LEASE_FILE, MANAGER_STATE_FILE
from snapferry.parts import check_coverage, group_by_file
from snapferry.remotes.fs import FsRemote
from tests.crash.harness import child_env, run_and_kill, wait_until, written_at_least
from tests.manager.helpers import Feed, StartVM, check_restores
from tests.manager.sim import SimClock
from tests.vm import VMServer, free_port

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

REPO = Path(__file__).resolve().parents[2]
Keys = frozenset[tuple[str, int, int, int, int]]


def child_argv(config: dict[str, Any], now: datetime) -> list[str]:
    spec = json.dumps({"now": now.isoformat(), "config": config})
    return [sys.executable, "-m", "tests.manager.sim_child", spec]


def child_env_here() -> dict[str, str]:
    return child_env({"PYTHONPATH": str(REPO)})


def fed_vm(vm_server: StartVM, tmp_path: Path, rate: int,
           version: str) -> tuple[VMServer, Path, dict[str, Any], Feed, datetime]:
    """A VictoriaMetrics of `version` with a first batch, and a child's ManagerConfig fields with
    uploads slow enough for a kill or a second manager to land mid-run."""
    vm = vm_server(tmp_path / "vmdata", version=version)
    dst_dir = tmp_path / "backups"
    config = {"storage_data_path": str(vm.storage_data_path), "snapshot_create_url": vm.snapshot_create_url,
              "dst": f"fs://{dst_dir}", "concurrency": 2, "max_bytes_per_second": rate}
    feed = Feed(vm, series=40, per_batch=1500)
    t = datetime(2026, 11, 2, 10, tzinfo=UTC)
    feed.ingest_before(t)
    return vm, dst_dir, config, feed, t


def keys(backup: Path) -> Keys:
    return frozenset(p.key for p in FsRemote(str(backup)).list_parts())


def backups(dst: Path) -> list[Path]:
    return [d for kind in ("hourly", "daily", "weekly", "monthly") for d in sorted((dst / kind).glob("*"))]


def complete(backup: Path) -> bool:
    return (backup / BACKUP_COMPLETE_FILE).exists()


def check_truthful(dst: Path, allowed: list[Keys]) -> None:
    """Every backup marked complete is whole and holds a complete latest/'s parts."""
    for b in [dst / "latest", *backups(dst)]:
        if not complete(b):
            continue
        check_coverage(group_by_file(FsRemote(str(b)).list_parts()))
        if b.name != "latest":
            assert keys(b) in allowed, f"{b} is marked complete but holds no complete latest/ state"


def periods(t: datetime) -> list[str]:
    return [t.strftime("hourly/%Y-%m-%d:%H"), t.strftime("daily/%Y-%m-%d"),
            f"weekly/{t.isocalendar().year}-{t.isocalendar().week:02d}", t.strftime("monthly/%Y-%m")]


def test_sigkill_mid_run_then_restart_finishes(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm, dst_dir, config, feed, t = fed_vm(vm_server, tmp_path, 256 * 1024, vm_version)
    config["keep_last_hourly"] = 1  # kills also land in retention's deletions
    mgr = Manager(ManagerConfig(**config), clock=SimClock(t))
    assert mgr.run_once().ok
    mgr.close()
    allowed = [keys(dst_dir / "latest")]
    rng = random.Random(20261128)
    landed = 0
    for _ in range(3):
        t += timedelta(hours=1)
        feed.ingest_before(t)
        size = sum(p.stat().st_size for p in (dst_dir / "latest").rglob("*") if p.is_file())
        attempt = run_and_kill(child_argv(config, t), written_at_least(rng.randrange(size)),
                               rng.uniform(0.0, 0.6), env=child_env_here(), workdir=tmp_path)
        landed += attempt.killed
        assert attempt.killed or attempt.returncode == 0, attempt.describe()
        check_truthful(dst_dir, allowed + ([keys(dst_dir / "latest")] if complete(dst_dir / "latest") else []))

        rerun = subprocess.run(child_argv(config, t), capture_output=True, text=True, timeout=300,
                               env=child_env_here(), check=False)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        latest = keys(dst_dir / "latest")
        assert complete(dst_dir / "latest")
        for name in periods(t):
            assert complete(dst_dir / name) and keys(dst_dir / name) == latest, name
        check_truthful(dst_dir, [*allowed, latest])
        assert [b.name for b in sorted((dst_dir / "hourly").iterdir())] == [t.strftime("%Y-%m-%d:%H")]
        allowed.append(latest)
        assert vm.snapshot_list() == []  # the rerun deleted the snapshot the killed run left
        assert not (dst_dir / LEASE_FILE).exists() and not (dst_dir / "latest" / LEASE_FILE).exists()
    assert landed >= 2  # the kills landed mid-run, not after the runs had ended
    check_restores(f"fs://{dst_dir}/daily/2026-11-02", ManagerConfig(**config).remote_options, None, vm_server,
                   tmp_path, feed.up_to(t), vm_version)


def test_two_managers_on_one_dst(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm, dst_dir, config, _feed, t = fed_vm(vm_server, tmp_path, 64 * 1024, vm_version)
    slow = subprocess.Popen(child_argv(config, t), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env_here())
    try:
        assert wait_until(lambda: (dst_dir / "latest" / LEASE_FILE).exists() or slow.poll() is not None, 60)
        assert slow.poll() is None, "the first manager's run ended before the second could meet it"
        events: list[tuple[BackupType, bool]] = []

        class Events:
            def run_started(self, type: BackupType) -> None:
                pass

            def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
                events.append((type, ok))

            def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
                pass

        other = Manager(ManagerConfig(**{**config, "max_bytes_per_second": 0}), clock=SimClock(t), events=Events())
        res = other.run_once()
        assert not res.ok and res.error is not None and "another manager run is writing" in res.error
        assert events == [(BackupType.LATEST, False)]
        out, err = slow.communicate(timeout=300)
        assert slow.returncode == 0, err[-3000:]
        assert json.loads(out)["ok"]
        assert other.run_once().ok  # the dst is free again
        other.close()
        assert vm.snapshot_list() == []  # the refused run made no snapshot
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()


def test_restart_neither_skips_nor_doubles(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm = vm_server(tmp_path / "vmdata", version=vm_version)
    config = ManagerConfig(storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url,
                           dst=f"fs://{tmp_path / 'backups'}")
    Feed(vm).ingest_before(datetime(2026, 11, 2, 10, tzinfo=UTC))

    def at(h: int, m: int = 0) -> datetime:
        return datetime(2026, 11, 2, h, m, tzinfo=UTC)

    first = Manager(config, clock=SimClock(at(10)))
    assert first.next_due() == at(11)  # a fresh dst: the next slot, no run now
    assert first.run_once().ok
    first.close()
    soon = Manager(config, clock=SimClock(at(10, 20)))  # restarted within the hour: no second run
    assert soon.next_due() == at(11)
    soon.close()
    clock = SimClock(at(12, 30))  # down from 10:20 to 12:30: one catch-up run now, then 13:00
    late = Manager(config, clock=clock)
    assert late.next_due() == at(12, 30)
    stop = threading.Event()
    runs: list[datetime] = []

    def stop_after_first(t: datetime) -> None:
        runs.append(t)

    clock.on_advance = stop_after_first
    clock.end = at(13, 30)
    late.serve(stop)
    late.close()
    assert runs == [at(12, 30), at(13)]
    assert {i.name for i in Manager(config, clock=clock).list_backups()} >= {"hourly/2026-11-02:12",
                                                                              "hourly/2026-11-02:13"}


def test_a_failing_run_waits_for_the_next_slot(tmp_path: Path) -> None:
    """VictoriaMetrics down: the run fails cleanly (one error, events say so) and the
    schedule goes on at the next slot instead of retrying at once in a loop."""
    dead = f"http://127.0.0.1:{free_port()}/snapshot/create"
    (tmp_path / "data" / "snapshots").mkdir(parents=True)  # a data directory VictoriaMetrics left
    (tmp_path / "data" / "flock.lock").touch()
    config = ManagerConfig(storage_data_path=str(tmp_path / "data"), snapshot_create_url=dead,
                           dst=f"fs://{tmp_path / 'b'}")
    at = [datetime(2026, 11, 2, h, tzinfo=UTC) for h in (10, 11, 12, 13)]
    runs: list[datetime] = []
    clock = SimClock(at[0], at[3], runs.append)
    failures: list[BackupType] = []

    class Events:
        def run_started(self, type: BackupType) -> None:
            pass

        def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
            if not ok:
                failures.append(type)

        def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
            pass

    # An earlier run succeeded at 09:00 (its record), so 10:00 is due at once.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MANAGER_STATE_FILE).write_text(json.dumps({"last_run_at": "2026-11-02T09:00:00+00:00"}))
    mgr = Manager(config, clock=clock, events=Events())
    assert mgr.next_due() == at[0]
    res = mgr.run_once()
    assert not res.ok and res.error is not None and "cannot reach" in res.error
    assert mgr.next_due() == at[1]
    mgr.serve(threading.Event())
    mgr.close()
    assert runs == at[1:3]  # 11:00 and 12:00, each once; 13:00 is the end of the simulation
    assert failures == [BackupType.LATEST] * 3


def test_dst_inside_the_data_path_is_refused_at_start(tmp_path: Path) -> None:
    config = ManagerConfig(storage_data_path=str(tmp_path), snapshot_create_url="http://127.0.0.1:1/snapshot/create",
                           dst=f"fs://{tmp_path / 'backups'}")
    with pytest.raises(UsageError, match="inside the source"):
        Manager(config)


def test_a_failed_backup_deletes_its_snapshot(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm, dst_dir, config, _feed, t = fed_vm(vm_server, tmp_path, 0, vm_version)
    dst_dir.mkdir()
    (dst_dir / "latest").write_text("not a directory")  # the backup into latest/ fails after the snapshot
    mgr = Manager(ManagerConfig(**config), clock=SimClock(t))
    res = mgr.run_once()
    mgr.close()
    assert not res.ok and [s.name for s in res.steps] == ["latest"]
    assert vm.snapshot_list() == []
    assert not list(vm.storage_data_path.glob("*.ignore"))  # nor its record



def test_a_snapshot_that_cannot_be_deleted_fails_the_run_and_the_next_run_deletes_it(
        vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm, _dst_dir, config, _feed, t = fed_vm(vm_server, tmp_path, 0, vm_version)
    bad = Manager(ManagerConfig(**config, snapshot_delete_url=f"{vm.url}/snapshot/no-such-endpoint"),
                  clock=SimClock(t))
    res = bad.run_once()
    bad.close()
    left = vm.snapshot_list()
    assert len(left) == 1
    assert not res.ok and res.error is not None and f"no-such-endpoint?snapshot={left[0]}" in res.error, res.error
    assert len(list(vm.storage_data_path.glob("*.ignore"))) == 1  # its record stays for the next run
    good = Manager(ManagerConfig(**config), clock=SimClock(t + timedelta(hours=1)))
    res = good.run_once()
    good.close()
    assert res.ok, res.error
    assert vm.snapshot_list() == []  # both the left one and this run's own
    assert not list(vm.storage_data_path.glob("*.ignore"))

@pytest.mark.parametrize("sub", ["outer/latest", "outer/latest/node-1", "outer/daily/2026-11-27/node-1",
                                 "outer/weekly/2026-48/x/y"])
def test_a_dst_inside_another_layouts_backup_is_refused_at_start(tmp_path: Path, sub: str) -> None:
    """An outer manager's runs delete latest/'s stale objects and its retention whole backups: an
    inner --dst there would lose its backups, so it is refused before anything is written."""
    config = ManagerConfig(storage_data_path=str(tmp_path / "data"), dst=f"fs://{tmp_path / sub}",
                           snapshot_create_url="http://127.0.0.1:1/snapshot/create")
    with pytest.raises(UsageError, match="lies inside the backup"):
        Manager(config)
    assert not (tmp_path / "outer").exists()
    # a root merely named like a type, or a sibling of the layout's backups, is fine
    for ok in ("backups/daily", "outer/node-1", "outer/daily-node"):
        Manager(ManagerConfig(storage_data_path=str(tmp_path / "data"), dst=f"fs://{tmp_path / ok}",
                              snapshot_create_url="http://127.0.0.1:1/snapshot/create")).close()


def test_a_clock_that_jumps_back_does_not_stall_the_schedule(tmp_path: Path) -> None:
    """A last run stamped after now (a clock stepped back by NTP, or a record written by a host
    whose clock ran ahead) must not hold the schedule until that time comes round again."""
    now = datetime(2026, 11, 2, 5, 10, tzinfo=UTC)
    (tmp_path / "data").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MANAGER_STATE_FILE).write_text(json.dumps({"last_run_at": "2030-01-01T10:00:00+00:00"}))
    config = ManagerConfig(storage_data_path=str(tmp_path / "data"), dst=f"fs://{tmp_path / 'b'}",
                           snapshot_create_url=f"http://127.0.0.1:{free_port()}/snapshot/create")
    clock = SimClock(now)
    mgr = Manager(config, clock=clock)
    try:
        assert mgr.next_due() == datetime(2026, 11, 2, 6, tzinfo=UTC)
        clock.set(datetime(2026, 11, 2, 10, tzinfo=UTC))
        assert not mgr.run_once().ok  # the run is attempted at 10:00 (its snapshot URL is dead)
        assert mgr.next_due() == datetime(2026, 11, 2, 11, tzinfo=UTC)
        clock.set(now)  # the clock steps back five hours
        assert mgr.next_due() == datetime(2026, 11, 2, 6, tzinfo=UTC)
    finally:
        mgr.close()


@pytest.mark.parametrize("sub", ["daily/2026-11-27/vm-data", "hourly/2026-11-27:13", "weekly/2026-48/a/b"])
def test_a_data_path_inside_a_dated_backup_of_the_dst_is_refused_at_start(tmp_path: Path, sub: str) -> None:
    """Copies into a dated backup and retention delete what is there: VictoriaMetrics' data would go."""
    data = tmp_path / "b" / sub
    data.mkdir(parents=True)
    (data / "flock.lock").write_bytes(b"")
    config = ManagerConfig(storage_data_path=str(data), dst=f"fs://{tmp_path / 'b'}",
                           snapshot_create_url="http://127.0.0.1:1/snapshot/create")
    with pytest.raises(UsageError, match="is inside the backup"):
        Manager(config)
    assert (data / "flock.lock").exists()
    Manager(ManagerConfig(storage_data_path=str(tmp_path / "b" / "vm-data"), dst=f"fs://{tmp_path / 'b'}",
                          snapshot_create_url="http://127.0.0.1:1/snapshot/create")).close()
