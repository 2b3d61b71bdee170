"""A simulated week of `snapferry manager` on a real VictoriaMetrics, against SeaweedFS
and fs://: the runs happen when the schedule says, retention keeps exactly the
expected backups, and each kept backup restores with that version's vmrestore and with
snapferry to exactly the samples ingested before its run, served by that version.

Both weeks run on VictoriaMetrics 1.79.5 and 1.145.0 (`vm_version`): every run and every
retention on both. The restore checks run full length on 1.145.0 (every kept backup, by
both tools); on 1.79.5, where they have run since the manager was written, the short
variant: latest/, one daily and one monthly (the locked daily where the week has one),
which is every path (a restore from each kind of backup by each tool) in 3 of the 10 or 5
restores, each of which starts a database twice (about a third of the week's time)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from snapferry.manager.layout import BackupType
from snapferry.manager.service import Manager, ManagerConfig
from tests.manager.helpers import Feed, StartVM, check_restores
from tests.manager.sim import SimClock
from tests.servers import S3Server
from tests.vm import NEW

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Recorder:
    """A ManagerEvents that remembers what the run reported."""

    events: list[tuple[str, BackupType | None, bool]] = field(default_factory=list)
    uploaded: int = 0
    deleted: int = 0

    def run_started(self, type: BackupType) -> None:
        self.events.append(("started", type, True))

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
        self.events.append(("done", type, ok))
        if type is BackupType.LATEST:
            self.uploaded += uploaded_bytes

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
        self.events.append(("retention", None, ok))
        self.deleted += deleted


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def restore_checked(when: dict[str, datetime], version: str, short: tuple[str, ...]) -> dict[str, datetime]:
    """Every kept backup on 1.145.0; on 1.79.5 the short variant's backups (see the docstring)."""
    return dict(when) if version == NEW else {n: when[n] for n in short}


def test_week_on_seaweedfs_every_12h(seaweedfs: S3Server, vm_server: StartVM, tmp_path: Path,
                                     vm_version: str) -> None:
    vm = vm_server(tmp_path / "vmdata", version=vm_version)
    dst, opts = seaweedfs.new_remote("vm-node-1")
    feed = Feed(vm)
    start, end = utc(2026, 10, 28), utc(2026, 11, 4)
    mgr: Manager

    def before_run(t: datetime) -> None:
        feed.ingest_before(t)
        if t == utc(2026, 10, 30):  # lock yesterday's daily before retention would drop it
            assert mgr.set_locked("daily/2026-10-29", True).locked

    clock = SimClock(start, end, before_run)
    rec = Recorder()
    config = ManagerConfig(
        storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url, dst=dst,
        backup_interval=timedelta(hours=12), run_on_start=True, keep_last_hourly=3, keep_last_daily=2,
        keep_last_weekly=1, remote_options=opts, concurrency=4,
    )
    mgr = Manager(config, clock=clock, events=rec)
    feed.ingest_before(start)
    mgr.serve(threading.Event())

    runs = [start + timedelta(hours=12 * i) for i in range(14)]
    assert [t for t, _ in feed.batches] == runs  # one run per slot, none skipped or doubled
    assert rec.events.count(("done", BackupType.LATEST, True)) == 14
    assert rec.events.count(("done", BackupType.DAILY, True)) == 14
    assert not [e for e in rec.events if not e[2]]
    assert vm.snapshot_list() == []  # every run deleted its snapshot

    infos = {i.name: i for i in mgr.list_backups()}
    when = {
        "latest": utc(2026, 11, 3, 12),
        "hourly/2026-11-02:12": utc(2026, 11, 2, 12),
        "hourly/2026-11-03:00": utc(2026, 11, 3, 0),
        "hourly/2026-11-03:12": utc(2026, 11, 3, 12),
        "daily/2026-10-29": utc(2026, 10, 29, 12),  # locked: kept past keep-last-daily=2
        "daily/2026-11-02": utc(2026, 11, 2, 12),
        "daily/2026-11-03": utc(2026, 11, 3, 12),
        "weekly/2026-45": utc(2026, 11, 3, 12),
        "monthly/2026-10": utc(2026, 10, 31, 12),
        "monthly/2026-11": utc(2026, 11, 3, 12),
    }
    assert sorted(infos) == sorted(when)
    assert all(i.complete for i in infos.values())
    assert [n for n, i in infos.items() if i.locked] == ["daily/2026-10-29"]
    # 14 runs made 14 hourly, 7 daily, 2 weekly: all but the kept ones were deleted.
    assert rec.deleted == (14 - 3) + (7 - 3) + (2 - 1)
    for name, run_at in restore_checked(when, vm_version, ("latest", "daily/2026-10-29", "monthly/2026-10")).items():
        check_restores(f"{dst}/{name}", opts, seaweedfs, vm_server, tmp_path, feed.up_to(run_at), vm_version)


def test_daily_at_paris_midnight_across_dst_on_fs(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    vm = vm_server(tmp_path / "vmdata", version=vm_version)
    dst = f"fs://{tmp_path / 'backups'}"
    feed = Feed(vm)
    start = datetime(2026, 10, 22, tzinfo=PARIS).astimezone(UTC)
    end = datetime(2026, 10, 29, 12, tzinfo=PARIS).astimezone(UTC)
    clock = SimClock(start, end, feed.ingest_before)
    config = ManagerConfig(
        storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url, dst=dst,
        backup_schedule_timezone="Europe/Paris", disable_hourly=True, run_on_start=True,
        keep_last_daily=3, keep_last_weekly=0, keep_last_monthly=1, concurrency=4,
    )
    mgr = Manager(config, clock=clock)
    feed.ingest_before(start)
    mgr.serve(threading.Event())

    midnights = [datetime(2026, 10, d, tzinfo=PARIS).astimezone(UTC) for d in range(22, 30)]
    assert [t for t, _ in feed.batches] == midnights
    # The night DST ends lasts 25 hours; every run is at local midnight all the same.
    assert midnights[4] - midnights[3] == timedelta(hours=25)
    infos = {i.name: i for i in mgr.list_backups()}
    when = {
        "latest": midnights[-1],
        "daily/2026-10-27": midnights[5],
        "daily/2026-10-28": midnights[6],
        "daily/2026-10-29": midnights[7],
        "monthly/2026-10": midnights[7],
    }
    assert sorted(infos) == sorted(when)  # keep-last-weekly=0 kept no weekly
    assert not (tmp_path / "backups" / "daily" / "2026-10-26").exists()
    assert vm.snapshot_list() == []
    for name, run_at in restore_checked(when, vm_version, ("latest", "daily/2026-10-27", "monthly/2026-10")).items():
        check_restores(f"{dst}/{name}", mgr.config.remote_options, None, vm_server, tmp_path, feed.up_to(run_at),
                       vm_version)
