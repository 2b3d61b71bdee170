"""Drop-in command lines the issue found differing from the real vmbackup/vmrestore, compared
with the real binaries (1.79.5 installed, 1.145.0 unpacked; tests/vm.py)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapferry.dropin.goflags import FlagSet
from snapferry.dropin.run import flag_set
from snapferry.dropin.tables import Tool
from snapferry.dropin.translate import translate
from snapferry.manager.schedule import zone
from tests.datagen import make_vm_snapshot, tree_digest
from tests.dropin.helpers import run_script, script
from tests.servers import free_port
from tests.vm import NEW, OLD, require_binary, run_vmbackup, run_vmrestore

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]
MiB = 1024 * 1024


def test_concurrency_zero_runs_as_the_originals_run_it(tmp_path: Path) -> None:
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=7, scale_bytes=MiB)
    for version in (OLD, NEW):  # both originals back up and restore with -concurrency=0
        bk, out = tmp_path / f"real-{version}", tmp_path / f"real-out-{version}"
        run_vmbackup(storage, snap.name, bk, extra_args=["-concurrency=0"], version=version)
        run_vmrestore(bk, out, extra_args=["-concurrency=0"], version=version)
        assert (bk / "backup_complete.ignore").exists() and (out / "data").is_dir()
    bk, out = tmp_path / "ours", tmp_path / "ours-out"
    run_script("vmbackup", [f"-storageDataPath={storage}", f"-snapshotName={snap.name}", f"-dst=fs://{bk}",
                            "-concurrency=0", f"-httpListenAddr=127.0.0.1:{free_port()}"])
    proc = run_script("vmrestore", [f"-src=fs://{bk}", f"-storageDataPath={out}", "-concurrency=0",
                                    f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert "-concurrency=0 runs as -concurrency=1" in proc.stderr
    snapshot_files = {k: v for k, v in tree_digest(snap).items()}
    restored = {k: v for k, v in tree_digest(out).items() if k in snapshot_files}
    assert restored == snapshot_files


def test_a_leftover_false_is_refused_as_today_s_vmrestore_refuses_it(tmp_path: Path) -> None:
    """`-skipBackupCompleteCheck false`: 1.79.5 ignores the leftover `false`, so the flag stays
    true and an incomplete backup is restored (the opposite of what the line says); 1.145.0
    refuses the line. snapferry refuses it as 1.145.0 does."""
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=8, scale_bytes=MiB)
    bk = tmp_path / "bk"
    run_vmbackup(storage, snap.name, bk)
    (bk / "backup_complete.ignore").unlink()  # an incomplete backup
    args = [f"-src=fs://{bk}", f"-httpListenAddr=127.0.0.1:{free_port()}", "-skipBackupCompleteCheck", "false"]
    old = subprocess.run([require_binary("vmrestore", OLD), f"-storageDataPath={tmp_path / 'old'}", *args],
                         capture_output=True, text=True, timeout=120, check=False)
    assert old.returncode == 0 and (tmp_path / "old" / "data").is_dir(), old.stderr  # restored, check skipped
    new = subprocess.run([require_binary("vmrestore", NEW), f"-storageDataPath={tmp_path / 'new'}", *args],
                         capture_output=True, text=True, timeout=120, check=False)
    assert new.returncode != 0 and "unprocessed command-line args left: [false]" in new.stderr
    ours = run_script("vmrestore", [f"-storageDataPath={tmp_path / 'ours'}", *args], check=False)
    assert ours.returncode == 2 and "unprocessed command-line args left: ['false']" in ours.stderr
    assert not (tmp_path / "new").exists() and not (tmp_path / "ours").exists()


def test_backup_schedule_timezone_local_is_go_s_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    fs: FlagSet = flag_set(Tool.VMBACKUPMANAGER)
    parsed = fs.parse(["-backupScheduleTimezone=Local", "-dst=fs:///b"], {}, interspersed=True)
    assert "--backup-schedule-timezone" in translate(Tool.VMBACKUPMANAGER, parsed).argv
    summer = datetime(2026, 7, 1, 12, tzinfo=UTC)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert summer.astimezone(zone("Local")).utcoffset().total_seconds() == 5.5 * 3600  # type: ignore[union-attr]
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert summer.astimezone(zone("Local")).utcoffset().total_seconds() == 2 * 3600  # type: ignore[union-attr]
    for empty_or_unknown in ("", "Mars/Base"):  # Go: UTC
        monkeypatch.setenv("TZ", empty_or_unknown)
        assert summer.astimezone(zone("Local")).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    monkeypatch.delenv("TZ")
    with open("/etc/localtime", "rb") as f:
        from zoneinfo import ZoneInfo
        expected = ZoneInfo.from_file(f)
    assert summer.astimezone(zone("Local")).utcoffset() == summer.astimezone(expected).utcoffset()


def test_the_manager_starts_with_local(tmp_path: Path) -> None:
    """The drop-in manager with -backupScheduleTimezone=Local gets past its start-up checks (the
    run then fails on the dead snapshot URL, which is not a usage error)."""
    proc = subprocess.Popen(
        [script("vmbackupmanager"), "-backupScheduleTimezone=Local", f"-storageDataPath={tmp_path / 'data'}", "-snapshot.createURL=http://127.0.0.1:1/snapshot/create",
         f"-dst=fs://{tmp_path / 'b'}", "-disableScheduledBackups", f"-httpListenAddr=127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"TZ": "Asia/Kolkata", "PATH": "/usr/bin"})
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "not a known time zone" not in err and proc.returncode in (0, -15), err
