"""Attack of round 5 on the snapshot-leak guard: a record in the data path with a tampered
intent line (a timeout of infinity or NaN, `before` not a list). Every later run on that data
path ended in "internal error" (OverflowError, ValueError, TypeError) before its snapshot, so
backups stopped until someone found the file; a timeout of days would also have let the next
run delete another tool's snapshot. Such an intent line is now an unreadable record: logged,
dropped, no snapshot deleted because of it, the run goes on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vm import VMServer, run_snapferry

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]


@pytest.mark.parametrize("head", [
    '{"pending_since": "%s", "timeout": 1e400, "before": []}',
    '{"pending_since": "%s", "timeout": NaN, "before": []}',
    '{"pending_since": "%s", "timeout": 864000, "before": []}',  # ten days: would take the other's
    '{"pending_since": "%s", "timeout": 60, "before": 5}',
    '{"pending_since": "%s", "timeout": "soon", "before": []}',
])
def test_a_tampered_record_neither_stops_runs_nor_deletes_another_tool_s_snapshot(
        head: str, vm_server: Callable[..., VMServer], tmp_path: Path) -> None:
    vm = vm_server(tmp_path / "vmdata", version="1.79.5")
    vm.import_prometheus('up{job="tamper"} 1\n')
    vm.force_flush()
    record = vm.storage_data_path / "snapferry_snapshot-0123456789ab.ignore"
    # a record "started" an hour ago; another tool's snapshot came later and was never listed
    started = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y%m%d%H%M%S")
    record.write_text(head % started + "\n")
    other = vm.snapshot_create()
    p = run_snapferry("backup", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                      vm.snapshot_create_url, "--dst", f"fs://{tmp_path / 'bk'}", "--progress", "off", check=False)
    assert p.returncode == 0, p.stderr
    assert "internal error" not in p.stderr
    assert "snapferry_snapshot-0123456789ab.ignore" in p.stderr  # the warning names the record
    assert vm.snapshot_list() == [other]  # ours was deleted after the backup; the other tool's stays
    assert not record.exists()
    assert (tmp_path / "bk" / "backup_complete.ignore").exists()
