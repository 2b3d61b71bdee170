"""`snapferry manager` from the command line, as a user (or an init container) runs it."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, RESTORE_MARK_FILE
from tests.crash.harness import wait_until
from tests.manager.helpers import Feed, StartVM
from tests.manager.sim import SimClock
from tests.vm import run_snapferry, snapferry_command

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

T = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


def one_line_error(p: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_list_lock_restore_marks_and_init_restore(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data, version=vm_version)
    dst = f"fs://{tmp_path / 'backups'}"
    feed = Feed(vm)
    feed.ingest_before(T)
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url, dst=dst,
                                disable_weekly=True, disable_monthly=True), clock=SimClock(T))
    assert mgr.run_once().ok
    mgr.close()

    listed = json.loads(run_snapferry("manager", "backup", "list", "--json", "--dst", dst).stdout)
    assert [b["name"] for b in listed] == ["daily/2026-11-27", "hourly/2026-11-27:13", "latest"]
    for b in listed:
        assert b["size_bytes"] > 0 and b["state"] == "complete" and b["locked"] is False
        assert b["size"].endswith("ki") or b["size"].isdigit()
        assert datetime.fromisoformat(b["created_at"]).tzinfo is not None
    human = run_snapferry("manager", "backup", "list", "--dst", dst).stdout
    assert "hourly/2026-11-27:13" in human

    locked = json.loads(run_snapferry("manager", "backup", "lock", "daily/2026-11-27", "--json", "--dst", dst).stdout)
    assert locked["locked"] is True and (tmp_path / "backups/daily/2026-11-27/backup_locked.ignore").exists()
    listed = json.loads(run_snapferry("manager", "backup", "list", "--json", "--dst", dst).stdout)
    assert [b["name"] for b in listed if b["locked"]] == ["daily/2026-11-27"]
    run_snapferry("manager", "backup", "unlock", "daily/2026-11-27", "--dst", dst)
    assert not (tmp_path / "backups/daily/2026-11-27/backup_locked.ignore").exists()

    before = sorted(p.name for p in (tmp_path / "backups").rglob("*"))
    for bad in ("daily/../latest", "../daily/2026-11-27", "yearly/2026", "daily/2026-11-27/x"):
        one_line_error(run_snapferry("manager", "backup", "lock", bad, "--dst", dst, check=False), 2,
                       "is not a backup name")
    one_line_error(run_snapferry("manager", "backup", "lock", "daily/2026-11-26", "--dst", dst, check=False), 2,
                   "there is no backup daily/2026-11-26")
    assert sorted(p.name for p in (tmp_path / "backups").rglob("*")) == before  # nothing changed

    # Restore marks: an incomplete backup is refused, a complete one is marked.
    sd = ["--storage-data-path", str(data)]
    (tmp_path / "backups/hourly/2026-11-27:13" / BACKUP_COMPLETE_FILE).unlink()
    one_line_error(run_snapferry("manager", "restore", "create", "hourly/2026-11-27:13", *sd, "--dst", dst,
                                 check=False), 3, "incomplete")
    one_line_error(run_snapferry("manager", "restore", "create", "daily/../x", *sd, "--dst", dst, check=False), 2)
    assert json.loads(run_snapferry("manager", "restore", "get", *sd).stdout) == {}
    run_snapferry("manager", "restore", "create", "daily/2026-11-27", *sd, "--dst", dst)
    # the mark holds the full URL, as vmbackupmanager's do: the init container needs no --dst
    assert (data / RESTORE_MARK_FILE).read_text().strip() == f"{dst}/daily/2026-11-27"
    assert json.loads(run_snapferry("manager", "restore", "get", *sd).stdout) == {"backup": f"{dst}/daily/2026-11-27"}
    run_snapferry("manager", "restore", "delete", *sd)
    assert json.loads(run_snapferry("manager", "restore", "get", *sd).stdout) == {}
    full = f"{dst}/daily/2026-11-27"  # a full URL: a backup of any --dst, as vmbackupmanager allows
    run_snapferry("manager", "restore", "create", full, *sd)
    assert json.loads(run_snapferry("manager", "restore", "get", *sd).stdout) == {"backup": full}
    one_line_error(run_snapferry("manager", "restore", "create", f"{dst}/hourly/2026-11-27:13", *sd, check=False),
                   3, "incomplete")
    run_snapferry("manager", "restore", "delete", *sd)
    run_snapferry("manager", "restore", "create", "daily/2026-11-27", *sd, "--dst", dst)

    # The init container: the database is stopped, the marked backup comes back, the mark goes.
    expected = feed.up_to(T)
    feed.ingest_before(datetime(2026, 11, 27, 15, tzinfo=UTC))  # newer than the backup: gone after the restore
    vm.force_flush()
    vm.stop()
    p = run_snapferry("manager", "restore", *sd, "--dst", dst, "--json")
    assert json.loads(p.stdout)["action"] == "restore"
    assert not (data / RESTORE_MARK_FILE).exists()
    vm2 = vm_server(data, version=vm_version)
    assert vm2.export('{__name__="snapferry_test"}') == expected
    vm2.stop()
    quiet = run_snapferry("manager", "restore", *sd, "--dst", dst, "--json")
    assert json.loads(quiet.stdout) == {"action": "restore", "restored": None}


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    one_line_error(run_snapferry("manager", "--dst", f"fs://{tmp_path}", check=False), 2, "--storage-data-path")
    args = ["manager", "--dst", f"fs://{tmp_path}", "--storage-data-path", str(tmp_path),
            "--snapshot-create-url", "http://127.0.0.1:1/snapshot/create"]
    one_line_error(run_snapferry(*args, "--backup-interval", "1d", check=False), 2, "--backup-interval")
    one_line_error(run_snapferry(*args, "--backup-schedule-timezone", "Mars/Base", check=False), 2, "Mars/Base")
    one_line_error(run_snapferry("manager", "backup", "list", check=False), 2, "--dst")


def test_service_runs_on_start_and_stops_on_sigterm(vm_server: StartVM, tmp_path: Path, vm_version: str) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data, version=vm_version)
    Feed(vm).ingest_before(T)
    backups = tmp_path / "backups"
    proc = subprocess.Popen(
        [*snapferry_command(), "manager", "--storage-data-path", str(data), "--snapshot-create-url",
         vm.snapshot_create_url, "--dst", f"fs://{backups}", "--run-on-start", "--disable-scheduled-backups",
         "--http-listen-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: (backups / "latest" / BACKUP_COMPLETE_FILE).exists() or proc.poll() is not None,
                          120)
        assert wait_until(lambda: len(list(backups.glob("monthly/*/" + BACKUP_COMPLETE_FILE))) == 1
                          or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert vm.snapshot_list() == []
