"""Issue 19 item 8: `backup --src <a running VictoriaMetrics' data directory>` is refused
(exit 4, pointing to the snapshot options) on both VictoriaMetrics versions, before anything
is written; a stopped data directory is refused (exit 2) unless --force; a snapshot of the
same database still backs up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from snapferry.names import BACKUP_COMPLETE_FILE
from tests.manager.helpers import StartVM
from tests.vm import make_samples, run_snapferry

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]


def last_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    return p.stderr.strip().splitlines()[-1]


def test_a_live_data_directory_is_refused_and_a_stopped_one_needs_force(
    vm_server: StartVM, vm_version: str, tmp_path: Path
) -> None:
    data = tmp_path / "vmdata"
    vm = vm_server(data, version=vm_version)
    vm.ingest(make_samples(seed=3, series=3, per_series=50, end_ms=1_790_000_000_000))
    vm.force_flush()
    bk = tmp_path / "bk"

    p = run_snapferry("backup", "--src", str(data), "--dst", f"fs://{bk}", "--progress", "off", check=False)
    line = last_line(p)
    assert p.returncode == 4, p.stderr
    assert str(data) in line and "--snapshot-create-url" in line and "--snapshot-name" in line, line
    # Nor a directory inside it.
    p = run_snapferry("backup", "--src", str(data / "data"), "--dst", f"fs://{bk}", "--progress", "off",
                      check=False)
    assert p.returncode == 4 and str(data) in last_line(p), p.stderr
    # --force never makes a live directory consistent.
    p = run_snapferry("backup", "--src", str(data), "--dst", f"fs://{bk}", "--progress", "off", "--force",
                      check=False)
    assert p.returncode == 4, p.stderr
    assert not bk.exists() or not any(bk.rglob("*"))

    # A snapshot of the running database is what to back up.
    name = vm.snapshot_create()
    run_snapferry("backup", "--src", str(vm.snapshot_dir(name)), "--dst", f"fs://{bk}", "--progress", "off")
    assert (bk / BACKUP_COMPLETE_FILE).exists()
    vm.snapshot_delete(name)

    vm.stop()
    stopped = tmp_path / "bk-stopped"
    p = run_snapferry("backup", "--src", str(data), "--dst", f"fs://{stopped}", "--progress", "off", check=False)
    line = last_line(p)
    assert p.returncode == 2 and "--force" in line and "data directory" in line, p.stderr
    assert not stopped.exists() or not any(stopped.rglob("*"))
    run_snapferry("backup", "--src", str(data), "--dst", f"fs://{stopped}", "--progress", "off", "--force")
    assert (stopped / BACKUP_COMPLETE_FILE).exists()
