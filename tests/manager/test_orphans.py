"""Retention killed mid-delete leaves nothing behind for ever (issue 19 item 9).

A deletion removes the completion marker, the parts, then the manifest and metadata,
under the backup's lease. A kill between those steps leaves a prefix that holds no
parts; the next retention finds it (Catalog.orphans) and cleans it up, within --dst,
only for names of the layout, and never a complete backup it should keep. Shown with
half-deleted states made by hand (each point of a deletion) and with SIGKILLs of a real
manager run during its retention.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import snapferry
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, BACKUP_LOCKED_FILE, LEASE_FILE
from snapferry.parts import check_coverage, group_by_file
from snapferry.remotes.fs import FsRemote
from tests.crash.harness import child_env, run_and_kill
from tests.manager.helpers import Feed, StartVM, restored_samples
from tests.manager.sim import SimClock

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

REPO = Path(__file__).resolve().parents[2]
DAY1 = datetime(2026, 11, 1, 10, tzinfo=UTC)
OLD = "daily/2026-10-30"  # the backup retention deletes
BIG_FILES = 3000


def config_of(vm: Any, root: Path) -> dict[str, Any]:
    return {"storage_data_path": str(vm.storage_data_path), "snapshot_create_url": vm.snapshot_create_url,
            "dst": f"fs://{root}", "disable_hourly": True, "disable_weekly": True, "disable_monthly": True,
            "keep_last_daily": 2, "concurrency": 2}


def child(config: dict[str, Any], now: datetime) -> list[str]:
    return [sys.executable, "-m", "tests.manager.sim_child", json.dumps({"now": now.isoformat(), "config": config})]


def env() -> dict[str, str]:
    return child_env({"PYTHONPATH": str(REPO)})


def make_old_backup(root: Path, tree: Path) -> Path:
    """A complete backup at OLD with many small parts, so its deletion takes long enough to kill."""
    if not tree.exists():
        for i in range(BIG_FILES):
            d = tree / "data" / "small" / "2026_10" / f"part{i:05d}"
            d.mkdir(parents=True)
            (d / "values.bin").write_bytes(os.urandom(16))
    snapferry.backup(f"fs://{root}/{OLD}", str(tree), progress="off")
    assert (root / OLD / BACKUP_COMPLETE_FILE).exists()
    return root / OLD


def parts_left(backup: Path) -> int:
    return sum(1 for _d, _s, files in os.walk(backup) for f in files if not f.endswith(".ignore"))


Keys = frozenset[tuple[str, int, int, int, int]]


def keys(backup: Path) -> Keys:
    return frozenset(p.key for p in FsRemote(str(backup)).list_parts())


def check_kept(root: Path, expected: dict[str, Keys]) -> None:
    """Each backup retention must keep is complete, whole, and holds the parts it had."""
    for n, want in expected.items():
        assert (root / n / BACKUP_COMPLETE_FILE).exists(), n
        check_coverage(group_by_file(FsRemote(str(root / n)).list_parts()))
        assert keys(root / n) == want, n


def leave_dead_lease(backup: Path) -> None:
    """The lease of a process killed while it held it (what a killed retention leaves)."""
    code = ("import os, signal, sys; from snapferry.lease import BackupLease; from snapferry.remotes.fs import "
            "FsRemote; BackupLease(FsRemote(sys.argv[1]), 'retention').acquire(); os.kill(os.getpid(), 9)")
    p = subprocess.run([sys.executable, "-c", code, str(backup)], env=env(), check=False)
    assert p.returncode == -9 and (backup / LEASE_FILE).exists()


def cut_to(backup: Path, point: str) -> None:
    """The state a deletion leaves when killed at `point` (files removed in deletion order)."""
    (backup / BACKUP_COMPLETE_FILE).unlink()
    for d, _dirs, files in os.walk(backup):
        for f in files:
            if not f.endswith(".ignore") or point == "empty-dirs":
                os.unlink(os.path.join(d, f))
    if point == "lease":
        leave_dead_lease(backup)
    if point == "locked":
        (backup / BACKUP_LOCKED_FILE).write_bytes(b"")


@pytest.mark.parametrize("point", ["manifest-and-metadata", "lease", "locked", "empty-dirs"])
def test_a_half_deleted_backup_is_cleaned_up_by_the_next_retention(vm_server: StartVM, tmp_path: Path,
                                                                   point: str) -> None:
    vm = vm_server(tmp_path / "vmdata")
    root = tmp_path / "backups"
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(DAY1)
    mgr = Manager(ManagerConfig(**config_of(vm, root)), clock=SimClock(DAY1))
    try:
        assert mgr.run_once().ok
        day1_keys = keys(root / "daily/2026-11-01")
        make_small_old(root, tmp_path)
        cut_to(root / OLD, point)
        # outside the layout or holding something not ours: never touched
        foreign = [root / "daily" / "not-a-date" / "backup_metadata.ignore", root / "daily/2026-10-29/notes.txt",
                   root / "daily/2026-10-29/backup_metadata.ignore", root / "elsewhere/2026-10-28/x.ignore"]
        for f in foreign:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("keep me")
        day2 = DAY1 + timedelta(days=1)
        feed.ingest_before(day2)
        mgr.clock.set(day2)  # type: ignore[attr-defined]
        res = mgr.run_once()
        assert res.ok, res
        assert not (root / OLD).exists()
        assert OLD in res.deleted
        assert all(f.read_text() == "keep me" for f in foreign)
        assert mgr.catalog.orphans() == ()
        check_kept(root, {"daily/2026-11-01": day1_keys, "daily/2026-11-02": keys(root / "latest")})
    finally:
        mgr.close()


def make_small_old(root: Path, tmp_path: Path) -> None:
    tree = tmp_path / "small-tree"
    for i in range(3):
        d = tree / "data" / "small" / "2026_10" / f"part{i}"
        d.mkdir(parents=True)
        (d / "values.bin").write_bytes(os.urandom(64))
    snapferry.backup(f"fs://{root}/{OLD}", str(tree), progress="off")


def trigger(name: str, backup: Path) -> Callable[[int], bool]:
    """When to kill the run, by what its retention has done to OLD so far."""
    marker = backup / BACKUP_COMPLETE_FILE
    if name == "marker-gone":
        return lambda pid: backup.exists() and not marker.exists()
    if name == "half-the-parts":
        return lambda pid: backup.exists() and not marker.exists() and parts_left(backup) < BIG_FILES // 2
    return lambda pid: backup.exists() and not marker.exists() and parts_left(backup) == 0


def test_retention_killed_mid_delete_leaves_nothing_after_the_next_run(vm_server: StartVM, tmp_path: Path) -> None:
    vm = vm_server(tmp_path / "vmdata")
    root = tmp_path / "backups"
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(DAY1)
    config = config_of(vm, root)
    mgr = Manager(ManagerConfig(**config), clock=SimClock(DAY1))
    assert mgr.run_once().ok
    mgr.close()
    kept = {"daily/2026-11-01": keys(root / "daily/2026-11-01")}
    day2 = DAY1 + timedelta(days=1)
    feed.ingest_before(day2)
    landed = []
    for point in ("marker-gone", "half-the-parts", "parts-gone"):
        old = make_old_backup(root, tmp_path / "big-tree")
        attempt = run_and_kill(child(config, day2), trigger(point, old), env=env(), workdir=tmp_path)
        assert attempt.killed or attempt.returncode == 0, attempt.describe()
        if attempt.killed:
            landed.append(point)
            assert old.exists() and not (old / BACKUP_COMPLETE_FILE).exists()  # caught mid-delete
        check_kept(root, kept)  # what retention keeps is never touched
        rerun = subprocess.run(child(config, day2), capture_output=True, text=True, timeout=600, env=env(),
                               check=False)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert not old.exists(), (point, sorted(p.name for p in old.rglob("*"))[:20])
        assert sorted(p.name for p in (root / "daily").iterdir()) == ["2026-11-01", "2026-11-02"]
        assert not list(root.rglob(LEASE_FILE))
        check_kept(root, {**kept, "daily/2026-11-02": keys(root / "latest")})
    assert len(landed) >= 2, landed
    out = tmp_path / "restored"
    snapferry.restore(f"fs://{root}/daily/2026-11-01", str(out), progress="off")
    assert restored_samples(vm_server, out) == feed.up_to(DAY1)
