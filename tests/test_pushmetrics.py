"""`--push-metrics-url`: one-shot runs push their metrics to a real victoria-metrics, then we query it."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from snapferry.errors import EXIT_BAD_BACKUP, EXIT_USAGE
from tests.faultproxy import FaultPlan, FaultProxy, ranged_get
from tests.servers import S3Server
from tests.vm import VMServer, run_snapferry

MIB = 1024 * 1024
RETRY_LINE = "retrying after a transient error"


@pytest.fixture
def vm(vm_server: Callable[..., VMServer], tmp_path: Path) -> VMServer:
    return vm_server(tmp_path / "vm-metrics")


def push_url(vm: VMServer) -> tuple[str, str]:
    """An import URL whose pushes carry a run label of their own, so each test reads only its run."""
    run_id = secrets.token_hex(4)
    q = urllib.parse.urlencode({"extra_label": f"run={run_id}"})
    return f"{vm.url}/api/v1/import/prometheus?{q}", run_id


def pushed_values(vm: VMServer, run_id: str) -> dict[tuple[str, str], float]:
    """(metric name, action label) -> the one value pushed for the run.

    One push is one request, so its samples become searchable together: wait for
    the first, bounded by count (new series take about a second to be searchable).
    """
    for _ in range(200):
        vm.force_flush()
        got = vm.export(f'{{run="{run_id}"}}')
        if got:
            break
        time.sleep(0.05)
    out: dict[tuple[str, str], float] = {}
    for key, points in got.items():
        labels = dict(key)
        assert len(points) == 1, (labels, points)  # one push per run
        out[(labels["__name__"], labels.get("action", ""))] = points[0][1]
    return out


def test_backup_restore_copy_push_their_byte_counts(vm: VMServer, snapshot_tree: Path, tmp_path: Path) -> None:
    bk, cp = f"fs://{tmp_path / 'bk'}", f"fs://{tmp_path / 'cp'}"
    url, run_id = push_url(vm)
    p = run_snapferry("backup", "--src", str(snapshot_tree), "--dst", bk, "--json", "--progress", "off",
                      "--max-part-size", str(MIB), "--push-metrics-url", url)
    b = json.loads(p.stdout)
    v = pushed_values(vm, run_id)
    assert v[("vm_backups_uploaded_bytes_total", "")] == b["uploaded_bytes"] == b["backup_bytes"] > 0
    assert v[("snapferry_parts_total", "backup")] == b["parts_uploaded"] > 1
    assert v[("snapferry_backup_size_bytes", "backup")] == b["backup_bytes"]
    assert v[("snapferry_run_success", "backup")] == 1
    assert v[("snapferry_retries_total", "backup")] == 0
    assert v[("snapferry_run_duration_seconds", "backup")] > 0
    assert v[("snapferry_run_finished_at", "backup")] >= v[("snapferry_run_started_at", "backup")]
    assert ("vm_backups_downloaded_bytes_total", "") not in v

    url, run_id = push_url(vm)
    p = run_snapferry("restore", "--src", bk, "--dst", str(tmp_path / "out"), "--json", "--progress", "off",
                      "--push-metrics-url", url)
    r = json.loads(p.stdout)
    v = pushed_values(vm, run_id)
    assert v[("vm_backups_downloaded_bytes_total", "")] == r["downloaded_bytes"] == b["backup_bytes"]
    assert v[("snapferry_parts_total", "restore")] == r["parts_downloaded"] > 1
    assert v[("snapferry_run_success", "restore")] == 1
    assert ("vm_backups_uploaded_bytes_total", "") not in v

    url, run_id = push_url(vm)
    p = run_snapferry("copy", "--src", bk, "--dst", cp, "--json", "--progress", "off", "--push-metrics-url", url)
    c = json.loads(p.stdout)
    v = pushed_values(vm, run_id)
    assert v[("vm_backups_uploaded_bytes_total", "")] == c["copied_bytes"] == b["backup_bytes"]
    assert v[("snapferry_parts_total", "copy")] == c["parts_copied"]
    assert v[("snapferry_run_success", "copy")] == 1


def test_a_failed_run_pushes_its_failure_without_byte_counts(vm: VMServer, tmp_path: Path) -> None:
    empty = tmp_path / "no-backup"
    empty.mkdir()
    url, run_id = push_url(vm)
    p = run_snapferry("restore", "--src", f"fs://{empty}", "--dst", str(tmp_path / "out"), "--progress", "off",
                      "--push-metrics-url", url, check=False)
    assert p.returncode == EXIT_BAD_BACKUP, p.stderr
    v = pushed_values(vm, run_id)
    assert v[("snapferry_run_success", "restore")] == 0
    assert v[("snapferry_retries_total", "restore")] == 0
    assert not [k for k in v if k[0].startswith("vm_backups_")], v


@pytest.mark.parametrize("log_level", ["info", "error"])
def test_retries_are_counted(
    vm: VMServer, seaweedfs: S3Server, snapshot_tree: Path, tmp_path: Path, log_level: str
) -> None:
    """Three ranged GETs answered 503 are three retries, also when --log-level hides the warnings."""
    bk, _ = seaweedfs.new_remote("bk")
    o = seaweedfs.options
    assert o.creds_file_path and o.config_file_path
    creds = ["--creds-file-path", o.creds_file_path, "--config-file-path", o.config_file_path,
             "--progress", "off"]
    run_snapferry("backup", "--src", str(snapshot_tree), "--dst", bk, "--max-part-size", str(MIB),
                  "--custom-s3-endpoint", seaweedfs.endpoint, *creds)
    with FaultProxy(seaweedfs.endpoint, FaultPlan(rate=1.0, kinds=("503",), match=ranged_get, limit=3)) as proxy:
        url, run_id = push_url(vm)
        p = run_snapferry("--log-level", log_level, "restore", "--src", bk, "--dst", str(tmp_path / "out"),
                          "--json", "--custom-s3-endpoint", proxy.endpoint, *creds, "--push-metrics-url", url)
        assert proxy.stats.faults["503"] == 3, proxy.stats
    assert p.stderr.count(RETRY_LINE) == (3 if log_level == "info" else 0), p.stderr
    v = pushed_values(vm, run_id)
    assert v[("snapferry_retries_total", "restore")] == 3
    assert v[("snapferry_run_success", "restore")] == 1
    assert v[("vm_backups_downloaded_bytes_total", "")] == json.loads(p.stdout)["downloaded_bytes"]


def test_an_unreachable_push_url_warns_and_keeps_the_result(snapshot_tree: Path, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}/api/v1/import/prometheus"
        p = run_snapferry("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'bk'}",
                          "--json", "--progress", "off", "--push-metrics-url", url)
    assert json.loads(p.stdout)["uploaded_bytes"] > 0
    warnings = [ln for ln in p.stderr.splitlines() if "pushing metrics" in ln]
    assert len(warnings) == 1 and url in warnings[0] and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "bk" / "backup_complete.ignore").exists()


def test_a_bad_push_url_is_a_usage_error(snapshot_tree: Path, tmp_path: Path) -> None:
    p = run_snapferry("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'bk'}",
                      "--push-metrics-url", "ftp://example/x", check=False)
    assert p.returncode == EXIT_USAGE and "--push-metrics-url" in p.stderr, p.stderr
    assert not (tmp_path / "bk").exists()
