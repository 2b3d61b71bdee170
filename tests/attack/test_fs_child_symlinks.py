"""Issue 19 item 4: an fs:// destination never follows a symlink below its root. A backup of
the manager's layout (`daily/<date>`, `latest`, or a type directory like `daily`) that is a
symlink to a directory elsewhere is neither written into, copied into, locked, unlocked,
deleted in, nor listed as if it were inside: the manager's run, retention, lock/unlock and
listing (through the real CLI) and every action name it or skip it, and a digest of the
directory outside is the same before and after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import SnapferryError
from snapferry.manager.http import start_server
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, BACKUP_LOCKED_FILE, RESTORE_MARK_FILE
from snapferry.remotes.fs import FsRemote
from tests.manager.helpers import Feed, StartVM
from tests.manager.sim import SimClock
from tests.servers import free_port
from tests.vm import run_snapferry

T = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


def digest(root: Path) -> str:
    """Every entry below root (names, kinds, link targets, bytes), in one hash."""
    h = hashlib.sha256()
    for dirpath, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for n in sorted(dirs + files):
            p = Path(dirpath) / n
            h.update(str(p.relative_to(root)).encode() + b"\0")
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            elif p.is_file():
                h.update(b"F" + p.read_bytes())
            else:
                h.update(b"D")
    return h.hexdigest()


def manager(data: Path, url: str, dst: str, when: datetime, **kw: object) -> Manager:
    cfg = ManagerConfig(storage_data_path=str(data), snapshot_create_url=url, dst=dst,
                        disable_hourly=True, disable_weekly=True, disable_monthly=True, **kw)  # type: ignore[arg-type]
    return Manager(cfg, clock=SimClock(when))


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
def test_manager_run_lock_unlock_list_and_retention_never_follow_a_symlinked_backup(
    vm_server: StartVM, tmp_path: Path
) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm)
    backups = tmp_path / "backups"
    dst = f"fs://{backups}"
    feed.ingest_before(T)
    mgr = manager(data, vm.snapshot_create_url, dst, T)
    assert mgr.run_once().ok
    mgr.close()
    # Outside the root: a complete backup (a copy of a real one) plus a part-named file
    # latest/ lacks, which a copy into it would delete, and a lock a unlock would delete.
    outside = tmp_path / "outside"
    shutil.copytree(backups / "daily" / "2026-11-27", outside / "day")
    stray = outside / "day" / "data" / "stray" / "0000000000000000_0000000000000010_0000000000000010"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x" * 16)
    shutil.copytree(outside / "day", outside / "locked")
    (outside / "locked" / BACKUP_LOCKED_FILE).write_bytes(b"")
    before = digest(outside)

    # The next day's run: daily/<that day> is a symlink to the backup outside.
    day2 = T + timedelta(days=1)
    os.symlink(outside / "day", backups / "daily" / "2026-11-28")
    feed.ingest_before(day2)
    mgr = manager(data, vm.snapshot_create_url, dst, day2)
    res = mgr.run_once()
    mgr.close()
    daily = [s for s in res.steps if s.name == "daily/2026-11-28"]
    assert not res.ok and len(daily) == 1 and not daily[0].ok
    assert daily[0].error is not None and "2026-11-28" in daily[0].error and "symlink" in daily[0].error
    assert digest(outside) == before

    # lock and unlock through the real CLI: one sentence naming the path, exit 3, nothing written.
    os.symlink(outside / "locked", backups / "daily" / "2026-11-29")
    for verb, name in (("lock", "2026-11-28"), ("unlock", "2026-11-29")):
        p = run_snapferry("manager", "backup", verb, f"daily/{name}", "--dst", dst, check=False)
        assert p.returncode == 3, p.stderr
        assert "Traceback" not in p.stderr and f"daily/{name}" in p.stderr and "symlink" in p.stderr, p.stderr
    assert digest(outside) == before

    # The same through the HTTP API (vmbackupmanager's PUT /api/v1/backups/<name>).
    mgr = manager(data, vm.snapshot_create_url, dst, day2)
    port = free_port()
    server = start_server(mgr, f"127.0.0.1:{port}")
    try:
        for name, locked in (("2026-11-28", True), ("2026-11-29", False)):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/backups/daily/{name}",
                                         data=json.dumps({"locked": locked}).encode(), method="PUT")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=60)
            err = json.loads(e.value.read())["error"]
            assert e.value.code == 400 and f"daily/{name}" in err and "symlink" in err, err
    finally:
        server.stop()
        mgr.close()
    assert digest(outside) == before

    # The init container's restore of a mark that names a backup swapped for a link.
    target = tmp_path / "target"
    target.mkdir()
    sd = ("--storage-data-path", str(target))
    shutil.copytree(backups / "daily" / "2026-11-27", tmp_path / "kept")
    run_snapferry("manager", "restore", "create", "daily/2026-11-27", *sd, "--dst", dst)
    shutil.rmtree(backups / "daily" / "2026-11-27")
    os.symlink(outside / "day", backups / "daily" / "2026-11-27")
    p = run_snapferry("manager", "restore", *sd, "--dst", dst, check=False)
    assert p.returncode == 3 and "daily/2026-11-27" in p.stderr and "symlink" in p.stderr, p.stderr
    assert sorted(x.name for x in target.iterdir()) == [RESTORE_MARK_FILE]
    run_snapferry("manager", "restore", "delete", *sd)
    os.unlink(backups / "daily" / "2026-11-27")
    shutil.copytree(tmp_path / "kept", backups / "daily" / "2026-11-27")
    assert digest(outside) == before

    # The listing reports the links and skips them.
    p = run_snapferry("manager", "backup", "list", "--json", "--dst", dst)
    assert [b["name"] for b in json.loads(p.stdout)] == ["daily/2026-11-27", "latest"]
    assert "daily/2026-11-28" in p.stderr and "symlink" in p.stderr
    p = run_snapferry("info", "--src", dst, "--json")
    assert [b["name"] for b in json.loads(p.stdout)["backups"]] == ["latest", "daily/2026-11-27"]
    assert "daily/2026-11-29" in p.stderr and "symlink" in p.stderr

    # Retention keeping one daily backup deletes only real ones; a symlinked type directory
    # (weekly -> outside) is neither listed nor pruned.
    os.symlink(outside, backups / "weekly")
    os.symlink(outside / "day", backups / "daily" / "2026-11-25")  # older than every real one
    (outside / "empty" / "dir").mkdir(parents=True)
    before = digest(outside)
    day3 = T + timedelta(days=3)
    feed.ingest_before(day3)
    mgr = manager(data, vm.snapshot_create_url, dst, day3, keep_last_daily=1)
    res = mgr.run_once()
    mgr.close()
    assert res.deleted == ("daily/2026-11-27",)
    assert digest(outside) == before
    assert (backups / "daily" / "2026-11-30" / BACKUP_COMPLETE_FILE).exists()


def test_every_action_refuses_a_symlinked_child_and_touches_nothing_outside(tmp_path: Path) -> None:
    """The child remotes the manager hands to the actions (backup into latest, copy into a
    dated backup, restore, verify and info of one, its lease and delete) on a symlink."""
    src = tmp_path / "snap"
    (src / "data" / "small" / "p1").mkdir(parents=True)
    (src / "data" / "small" / "p1" / "values.bin").write_bytes(os.urandom(5000))
    (src / "indexdb" / "x").mkdir(parents=True)
    (src / "indexdb" / "x" / "items.bin").write_bytes(os.urandom(3000))
    root = tmp_path / "root"
    snapferry.backup(f"fs://{root}/real", str(src), progress="off")
    outside = tmp_path / "outside"
    shutil.copytree(root / "real", outside / "b")
    (outside / "b" / BACKUP_LOCKED_FILE).write_bytes(b"")
    (root / "daily").mkdir()
    os.symlink(outside / "b", root / "daily" / "linked")
    os.symlink(outside, root / "latest")
    before = digest(outside)
    top = FsRemote(str(root))
    latest, linked, real = top.child("latest"), top.child("daily/linked"), top.child("real")
    from snapferry.actions.backup import Backup
    from snapferry.actions.copy import Copy
    from snapferry.actions.restore import Restore
    from snapferry.actions.source import SnapshotDir
    from snapferry.actions.verify import Verify
    from snapferry.settings import ProgressMode, RunSettings

    quiet = RunSettings(progress=ProgressMode.OFF)

    def refused(f: object, *a: object, **kw: object) -> None:
        with pytest.raises(SnapferryError, match="symlink"):
            f(*a, **kw)  # type: ignore[operator]

    refused(Backup(latest, SnapshotDir(str(src)), quiet).run)
    refused(Copy(real, linked, quiet).run)
    refused(Copy(linked, real, quiet).run)
    refused(Verify(linked, quiet, read_data=True).run)
    refused(linked.list_parts)
    refused(linked.write_file, BACKUP_LOCKED_FILE, b"")
    refused(linked.delete_file, BACKUP_LOCKED_FILE)
    refused(linked.has_file, BACKUP_COMPLETE_FILE)
    refused(linked.create_file_exclusive, "lease", b"x")
    refused(top.child("latest/b").list_objects)
    refused(linked.prune_empty_dirs)
    refused(Restore(linked, str(tmp_path / "restored")).run)
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())
    assert digest(outside) == before

    # At any depth: a directory inside a child backup that links outside the root, or to
    # another backup inside it (a copy would unlink that backup's parts before linking).
    for n, target in (("deep", outside / "b" / "data"), ("sibling", root / "real" / "data")):
        (root / "daily" / n).mkdir()
        os.symlink(target, root / "daily" / n / "data")
        real_before = digest(root / "real")
        with pytest.raises(SnapferryError, match="resolve outside"):
            Copy(real, top.child(f"daily/{n}"), quiet).run()
        with pytest.raises(SnapferryError, match="resolve outside"):
            Backup(top.child(f"daily/{n}"), SnapshotDir(str(src)), quiet).run()
        assert digest(outside) == before and digest(root / "real") == real_before
    top.close()
