"""What an operator's protections promise, on a real VictoriaMetrics and real remotes (issue 19).

- A backup locked or marked for restore is frozen: a later run of its period leaves it as
  it was, says so in the log and in snapferry_backups_skipped_frozen_total, and the init
  container's restore brings back exactly the content at the time of the mark.
- A mark is one place however its URL is spelled: retention never deletes the marked backup.
- A run whose clock was ahead (2030) cannot make later runs delete their own backups.
- Marks carry the full URL, so the init container needs no -dst; a bare name still works
  with --dst; -restore.disableSourceBackupValidation skips the existence check.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import snapferry
from snapferry.lease import BackupLease
from snapferry.manager.catalog import Catalog
from snapferry.manager.http import start_server
from snapferry.manager.layout import parse_backup_name
from snapferry.manager.marks import RestoreMarks
from snapferry.manager.metrics import Metrics
from snapferry.manager.prune import frozen_reason
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, BACKUP_LOCKED_FILE, LEASE_FILE, RESTORE_MARK_FILE
from snapferry.remotes import RemoteOptions
from snapferry.remotes.fs import FsRemote
from tests.manager.helpers import Feed, StartVM, restored_samples
from tests.manager.sim import SimClock
from tests.servers import S3Server
from tests.vm import free_port, run_snapferry

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

T = datetime(2026, 12, 7, 9, 5, tzinfo=UTC)
TODAY = "daily/2026-12-07"


class Dst:
    def __init__(self, url: str, options: RemoteOptions, cli_args: list[str]) -> None:
        self.url, self.options, self.cli_args = url, options, cli_args


@pytest.fixture(params=["fs", "s3-seaweedfs"])
def dst(request: pytest.FixtureRequest, tmp_path: Path) -> Dst:
    if request.param == "fs":
        return Dst(f"fs://{tmp_path / 'backups'}", RemoteOptions(), [])
    server: S3Server = request.getfixturevalue("seaweedfs")
    url, opts = server.new_remote("vm-node-0")
    assert opts.creds_file_path and opts.config_file_path
    return Dst(url, opts, ["--custom-s3-endpoint", server.endpoint, "--creds-file-path", opts.creds_file_path,
                           "--config-file-path", opts.config_file_path])


def metric(metrics: Metrics, name: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(metrics.render().decode()):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def part_keys(mgr: Manager, name: str) -> set[tuple[str, int, int, int, int]]:
    return {p.key for p in mgr.catalog.open(parse_backup_name(name)).list_parts()}


@pytest.mark.parametrize("protect", ["mark", "lock"])
def test_a_marked_or_locked_backup_of_today_keeps_its_content(
        dst: Dst, protect: str, vm_server: StartVM, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    clock = SimClock(T)
    metrics = Metrics()
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=dst.url, remote_options=dst.options, disable_hourly=True), clock=clock,
                  events=metrics)
    try:
        assert mgr.run_once().ok
        marked = part_keys(mgr, TODAY)
        if protect == "mark":  # the CLI, as an operator runs it beside the sidecar
            run_snapferry("manager", "restore", "create", TODAY, "--storage-data-path", str(data),
                          "--dst", dst.url, *dst.cli_args)
        else:
            run_snapferry("manager", "backup", "lock", TODAY, "--dst", dst.url, *dst.cli_args)
        # more data, then a second run the same day: latest/ moves on, the frozen backup does not
        feed.ingest_before(T + timedelta(hours=2))
        clock.set(T + timedelta(hours=2))
        caplog.set_level(logging.INFO, logger="snapferry")
        res = mgr.run_once()
        assert res.ok, res
        assert part_keys(mgr, TODAY) == marked != part_keys(mgr, "latest")
        step = next(s for s in res.steps if s.name == TODAY)
        assert step.skipped is not None and ("marked for restore" if protect == "mark" else "locked") in step.skipped
        assert step.bytes == 0
        assert f"backup {TODAY} is" in caplog.text and "leaves it as it is" in caplog.text
        assert metric(metrics, "snapferry_backups_skipped_frozen_total", type="daily") == 1.0
        assert next(s for s in res.steps if s.name.startswith("weekly/")).skipped is None  # not frozen
        assert mgr.catalog.info(parse_backup_name(TODAY)).complete
    finally:
        mgr.close()
    vm.stop()
    if protect == "mark":
        # the operator's init container: `restore -storageDataPath=...`, no -dst
        run_snapferry("manager", "restore", "--storage-data-path", str(data), "--progress", "off", *dst.cli_args)
        assert not (data / RESTORE_MARK_FILE).exists()
        assert restored_samples(vm_server, data) == feed.up_to(T)
    else:
        out = tmp_path / "restored"
        snapferry.restore(f"{dst.url}/{TODAY}", str(out), remote_options=dst.options, progress="off")
        assert restored_samples(vm_server, out) == feed.up_to(T)


def spellings(dst: Dst, tmp_path: Path, name: str) -> list[str]:
    """Other spellings of the URL of `name` under dst: all one place."""
    if dst.url.startswith("fs://"):
        root = dst.url[len("fs://"):]
        alias = tmp_path / "alias"
        alias.symlink_to(root)
        return [f"{dst.url}/{name}/", f"fs://{root}//{name}", f"fs://{root}/./{name}", f"fs://{alias}/{name}"]
    return [f"{dst.url}/{name}/", f"{dst.url}/{name}//"]


def test_a_mark_keeps_its_backup_however_its_url_is_spelled(dst: Dst, vm_server: StartVM, tmp_path: Path) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    clock = SimClock(T)
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=dst.url, remote_options=dst.options, disable_hourly=True, disable_weekly=True,
                                disable_monthly=True, keep_last_daily=1), clock=clock)
    try:
        assert mgr.run_once().ok
        day = 0
        for spelled in spellings(dst, tmp_path, TODAY):
            (data / RESTORE_MARK_FILE).write_text(spelled + "\n")  # as a hand or another tool wrote it
            day += 1
            clock.set(T + timedelta(days=day))
            res = mgr.run_once()
            assert res.ok and TODAY not in res.deleted, (spelled, res)
            assert mgr.catalog.info(parse_backup_name(TODAY)).complete, spelled
            if "/alias/" not in spelled:  # a symlinked root is another path to the same place
                assert mgr.restore_mark_get() == f"{dst.url}/{TODAY}"  # read back in one spelling
        # the last day's run deleted the day before it, never the marked one
        assert [i.name for i in mgr.list_backups() if i.name.startswith("daily/")] == [
            TODAY, (T + timedelta(days=day)).strftime("daily/%Y-%m-%d")]
        # a mark created with a spelled URL is written in the one spelling
        spelled = f"{dst.url}//{TODAY}/" if dst.url.startswith("fs://") else f"{dst.url}/{TODAY}/"
        run_snapferry("manager", "restore", "create", spelled, "--storage-data-path", str(data), *dst.cli_args)
        assert (data / RESTORE_MARK_FILE).read_text() == f"{dst.url}/{TODAY}\n"
    finally:
        mgr.close()
    vm.stop()
    run_snapferry("manager", "restore", "--storage-data-path", str(data), "--progress", "off", *dst.cli_args)
    assert restored_samples(vm_server, data) == feed.up_to(T)


def test_one_run_with_the_clock_in_2030_does_not_eat_later_backups(
        vm_server: StartVM, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    ahead = datetime(2030, 1, 2, 10, tzinfo=UTC)
    clock = SimClock(ahead)
    metrics = Metrics()
    root = tmp_path / "backups"
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=f"fs://{root}", disable_hourly=True, keep_last_daily=1, keep_last_weekly=1,
                                keep_last_monthly=1), clock=clock, events=metrics)
    try:
        assert mgr.run_once().ok  # the clock is in 2030
        future = ["daily/2030-01-02", "monthly/2030-01", "weekly/2030-01"]
        caplog.set_level(logging.INFO, logger="snapferry")
        for hours in (0, 3):  # the clock is right again: two runs today
            clock.set(T + timedelta(hours=hours))
            res = mgr.run_once()
            ours = ["daily/2026-12-07", "monthly/2026-12", "weekly/2026-50"]
            assert res.ok and not set(res.deleted) & set(ours), res
            names = {i.name: i.complete for i in mgr.list_backups()}
            assert all(names.get(n) for n in ours), names  # this run's backups are there, complete
            assert all(names.get(n) for n in future), names  # and the future ones are left for a human
        assert "dated after now" in caplog.text and "weekly/2030-01" in caplog.text
        for kind in ("daily", "weekly", "monthly"):
            assert metric(metrics, "snapferry_backups_dated_in_future", type=kind) == 1.0
    finally:
        mgr.close()
    out = tmp_path / "restored"
    snapferry.restore(f"fs://{root}/weekly/2026-50", str(out), progress="off")
    assert restored_samples(vm_server, out) == feed.up_to(T)


def test_marks_carry_the_url_and_validation_can_be_skipped(vm_server: StartVM, tmp_path: Path) -> None:
    """A mark of a name is written as the full URL; an old mark holding only a name still
    restores with --dst and says what to do without it; the drop-in's
    -restore.disableSourceBackupValidation marks a backup that does not exist (yet)."""
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    root = tmp_path / "backups"
    dst = f"fs://{root}"
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url, dst=dst,
                                disable_hourly=True, disable_weekly=True, disable_monthly=True), clock=SimClock(T))
    assert mgr.run_once().ok
    assert mgr.restore_mark_create(TODAY) == f"{dst}/{TODAY}"
    assert (data / RESTORE_MARK_FILE).read_text() == f"{dst}/{TODAY}\n"
    mgr.close()
    vm.stop()

    sd = ["--storage-data-path", str(data)]
    (data / RESTORE_MARK_FILE).write_text(TODAY + "\n")  # an older mark: a name only
    p = run_snapferry("manager", "restore", *sd, check=False)
    assert p.returncode == 2 and "pass --dst" in p.stderr and "Traceback" not in p.stderr, p.stderr
    run_snapferry("manager", "restore", *sd, "--dst", dst, "--progress", "off")
    assert not (data / RESTORE_MARK_FILE).exists()
    assert restored_samples(vm_server, data) == feed.up_to(T)

    missing = "daily/2026-12-09"
    p = run_snapferry("manager", "restore", "create", missing, *sd, "--dst", dst, check=False)
    assert p.returncode == 2 and "there is no backup" in p.stderr, p.stderr
    run_snapferry("vmbackupmanager", f"-storageDataPath={data}", f"-dst={dst}",
                  "-restore.disableSourceBackupValidation", "restore", "create", missing)
    assert (data / RESTORE_MARK_FILE).read_text() == f"{dst}/{missing}\n"
    # a URL is still checked for what it can destroy: a backup inside the data path is refused
    inside = data / "stash"
    p = run_snapferry("manager", "restore", "create", f"fs://{inside}", *sd, "--disable-source-backup-validation",
                      check=False)
    assert p.returncode == 2 and "overlaps the storage data path" in p.stderr, p.stderr
    assert not os.path.exists(inside)


def test_a_complete_backup_is_never_taken_for_an_orphan(vm_server: StartVM, tmp_path: Path) -> None:
    """A run's own dated backups hold parts and a completion marker: retention's clean-up
    finds nothing to do on a healthy --dst."""
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    Feed(vm, series=2, per_batch=10).ingest_before(T)
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=f"fs://{tmp_path / 'b'}", keep_last_daily=5), clock=SimClock(T))
    try:
        assert mgr.run_once().ok
        assert mgr.catalog.orphans() == ()
        assert all((tmp_path / "b" / i.name / BACKUP_COMPLETE_FILE).exists() for i in mgr.list_backups())
    finally:
        mgr.close()


def test_a_mark_of_latest_holds_the_runs_until_the_restore(vm_server: StartVM, tmp_path: Path) -> None:
    """latest/ changes with every run: while a mark names it, runs make no snapshot and copy
    nothing, so the restore brings back latest/ as it was when marked."""
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    clock = SimClock(T)
    metrics = Metrics()
    root = tmp_path / "backups"
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=f"fs://{root}", disable_hourly=True), clock=clock, events=metrics)
    try:
        assert mgr.run_once().ok
        marked = part_keys(mgr, "latest")
        assert mgr.restore_mark_create("latest") == f"fs://{root}/latest"
        feed.ingest_before(T + timedelta(days=1))
        clock.set(T + timedelta(days=1))
        res = mgr.run_once()
        assert part_keys(mgr, "latest") == marked
        assert res.ok and [s.name for s in res.steps] == ["latest"] and res.steps[0].skipped is not None
        assert not (root / "daily/2026-12-08").exists()
        assert vm.snapshot_list() == []
        assert metric(metrics, "snapferry_backups_skipped_frozen_total", type="latest") == 1.0
    finally:
        mgr.close()
    vm.stop()
    run_snapferry("manager", "restore", "--storage-data-path", str(data), "--progress", "off")
    assert restored_samples(vm_server, data) == feed.up_to(T)


def test_a_mark_made_through_the_api_restores_in_the_operators_init_container(vm_server: StartVM,
                                                                               tmp_path: Path) -> None:
    """POST /api/v1/restore {"backup": "daily/..."}, then the operator's `restore -eula
    -storageDataPath=...` (no -dst): the marked backup comes back (issue 21)."""
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    root = tmp_path / "backups"
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=f"fs://{root}", disable_hourly=True, disable_scheduled_backups=True),
                  clock=SimClock(T), events=Metrics())
    port = free_port()
    server = start_server(mgr, f"127.0.0.1:{port}")
    try:
        assert mgr.run_once().ok
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/restore", method="POST",
                                     data=json.dumps({"backup": TODAY}).encode())
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 201
        assert (data / RESTORE_MARK_FILE).read_text() == f"fs://{root}/{TODAY}\n"
        feed.ingest_before(T + timedelta(hours=3))  # written after the mark: gone after the restore
    finally:
        server.stop()
        mgr.close()
    vm.stop()
    run_snapferry("vmbackupmanager", "restore", "-eula", f"-storageDataPath={data}")
    assert not (data / RESTORE_MARK_FILE).exists()
    assert restored_samples(vm_server, data) == feed.up_to(T)


def test_a_mark_or_a_lock_is_refused_while_a_copy_writes_the_backup(vm_server: StartVM, tmp_path: Path) -> None:
    """A run copies into a dated backup under its lease and checks there that the backup is not
    frozen; a mark or a lock takes the same lease, so neither can land between that check and
    the copy: while a copy holds it they are refused (exit 4) and nothing is written."""
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    Feed(vm, series=2, per_batch=10).ingest_before(T)
    root = tmp_path / "backups"
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=f"fs://{root}", disable_hourly=True), clock=SimClock(T))
    try:
        assert mgr.run_once().ok
    finally:
        mgr.close()
    copy = BackupLease(FsRemote(str(root / TODAY)), "copy")  # a copy into today's backup in flight
    copy.acquire()
    try:
        for argv in (["restore", "create", TODAY, "--storage-data-path", str(data)], ["backup", "lock", TODAY]):
            p = run_snapferry("manager", *argv, "--dst", f"fs://{root}", check=False)
            assert p.returncode == 4 and "another copy is writing" in p.stderr, p.stderr
            assert "Traceback" not in p.stderr
        assert not (data / RESTORE_MARK_FILE).exists() and not (root / TODAY / BACKUP_LOCKED_FILE).exists()
    finally:
        copy.release()
    run_snapferry("manager", "restore", "create", TODAY, "--storage-data-path", str(data), "--dst", f"fs://{root}")
    run_snapferry("manager", "backup", "lock", TODAY, "--dst", f"fs://{root}")
    assert not list(root.rglob(LEASE_FILE))


def test_retention_asks_again_under_the_lease_before_it_deletes(snapshot_tree: Path, tmp_path: Path) -> None:
    """A mark or a lock made after retention listed the backups still keeps the backup:
    the deletion asks again once it holds the backup's lease (which marks and locks take)."""
    root = tmp_path / "backups"
    for day in ("2026-12-01", "2026-12-02"):
        snapferry.backup(f"fs://{root}/daily/{day}", str(snapshot_tree), progress="off")
    data = tmp_path / "vmdata-mark"
    data.mkdir()
    with Catalog(f"fs://{root}", RemoteOptions()) as catalog:
        marks = RestoreMarks(str(data), catalog)
        marks.create("daily/2026-12-01")
        catalog.set_locked(parse_backup_name("daily/2026-12-02"), True)
        for day in ("daily/2026-12-01", "daily/2026-12-02"):
            name = parse_backup_name(day)
            assert not catalog.delete(name, keep_if=functools.partial(frozen_reason, catalog, marks, name))
            assert catalog.info(name).complete
        marks.delete()
        assert catalog.delete(parse_backup_name("daily/2026-12-01"),
                              keep_if=functools.partial(frozen_reason, catalog, marks,
                                                        parse_backup_name("daily/2026-12-01")))
    assert not (root / "daily/2026-12-01").exists()
