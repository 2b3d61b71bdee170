"""The backup lease against real processes: another PID namespace, and a paused writer.

A second backup started in another PID namespace on the same host (as a container
with host networking would be) cannot see the first writer's PID; it must still be
refused (exit 4) while that writer's lease is live. A writer paused with SIGSTOP
past its lease's TTL is taken over; when it resumes it must notice from the lease
object itself and stop with exit 4 without writing the completion marker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.crash import harness as h
from tests.crash.test_locks import assert_refused_as_locked, finish, start
from tests.servers import S3Server

RATE = 512 * 1024  # slow enough that the first backup is still running when the second starts
SHORT_TTL = "2"
# Runs the real CLI with a lease TTL of argv[1] seconds (BackupLease reads the module's default).
DRIVER = (
    "import sys; import snapferry.lease as lease; lease.TTL_SECONDS = float(sys.argv[1]); "
    "from snapferry.cli.main import entry; sys.argv = ['snapferry', *sys.argv[2:]]; entry()"
)


@dataclass
class Dst:
    """A backup destination and raw access to its objects, without snapferry."""

    url: str
    flags: list[str]
    get: Callable[[str], bytes | None]
    delete: Callable[[str], None]
    count: Callable[[], int]  # objects (or files) below it


def fs_dst(ws: h.Workspace) -> Dst:
    root = ws.fresh("lease") / "bk"

    def get(name: str) -> bytes | None:
        try:
            return (root / name).read_bytes()
        except FileNotFoundError:
            return None

    def count() -> int:
        return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0

    return Dst(f"fs://{root}", [], get, lambda n: (root / n).unlink(missing_ok=True), count)


def s3_dst(server: S3Server) -> Dst:
    url, opts = server.new_remote("bk")
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    client = server.client()

    def get(name: str) -> bytes | None:
        try:
            return server.raw_get(bucket, f"bk/{name}")
        except client.exceptions.NoSuchKey:
            return None

    flags = ["--custom-s3-endpoint", server.endpoint, "--creds-file-path", str(opts.creds_file_path),
             "--config-file-path", str(opts.config_file_path)]
    return Dst(url, flags, get, lambda n: client.delete_object(Bucket=bucket, Key=f"bk/{n}"),
               lambda: int(client.list_objects_v2(Bucket=bucket, Prefix="bk/").get("KeyCount", 0)))


@pytest.fixture(params=["fs", "s3-seaweedfs"])
def dst(request: pytest.FixtureRequest, ws: h.Workspace) -> Dst:
    if request.param == "fs":
        return fs_dst(ws)
    server: S3Server = request.getfixturevalue("seaweedfs")
    return s3_dst(server)


def backup_args(src: Path, d: Dst, rate: int) -> list[str]:
    args = ["backup", "--src", str(src), "--dst", d.url, "--progress", "off",
            "--max-part-size", str(h.PART_SIZE), *d.flags]
    return args + (["--max-bytes-per-second", str(rate)] if rate else [])


def wait_for_uploads(proc: subprocess.Popen[str], d: Dst) -> None:
    """Until the writer holds the lease and has parts at the destination."""
    assert h.wait_until(lambda: proc.poll() is not None or (d.get(h.LEASE) is not None and d.count() >= 6),
                        step=0.05)
    assert proc.poll() is None, "the first backup ended too soon to overlap"


def test_a_writer_in_another_pid_namespace_is_not_taken_over(ws: h.Workspace, dst: Dst) -> None:
    assert os.geteuid() == 0, "unshare --pid needs root"
    first = start(h.snapferry_argv(*backup_args(ws.src, dst, RATE)))
    try:
        wait_for_uploads(first, dst)
        holder = json.loads(dst.get(h.LEASE) or b"{}")
        assert holder["pid"] == first.pid
        # In a new PID namespace the first writer's pid does not exist (or is another process).
        second = h.run_cli(["unshare", "--pid", "--fork", "--mount-proc",
                            *h.snapferry_argv(*backup_args(ws.old_src, dst, 0))])
        assert_refused_as_locked(second, dst.url, "another backup", str(first.pid))
        assert first.poll() is None
        assert json.loads(dst.get(h.LEASE) or b"{}")["owner"] == holder["owner"]
    finally:
        first.send_signal(signal.SIGTERM)
        r = finish(first)
    assert r.returncode == 143, r.stderr[-3000:]
    assert dst.get(h.COMPLETE) is None


def test_a_paused_writer_taken_over_stops_without_the_marker(ws: h.Workspace, dst: Dst) -> None:
    first = start([sys.executable, "-c", DRIVER, SHORT_TTL, *backup_args(ws.src, dst, RATE)])
    resumed = False
    try:
        wait_for_uploads(first, dst)
        first.send_signal(signal.SIGSTOP)

        def expired() -> bool:
            lease = dst.get(h.LEASE)
            return lease is not None and json.loads(lease)["expires_at"] < time.time()

        assert h.wait_until(expired, step=0.1)
        # The other writer takes the expired lease and finishes its backup.
        second = h.run_cli(h.snapferry_argv(*backup_args(ws.old_src, dst, 0)))
        assert second.returncode == 0, second.stderr
        assert "taking over the stale lease" in second.stderr
        # Drop its marker, so a marker afterwards can only come from the resumed writer.
        dst.delete(h.COMPLETE)
        first.send_signal(signal.SIGCONT)
        resumed = True
        r = finish(first)
    finally:
        if not resumed:
            first.send_signal(signal.SIGCONT)
            finish(first)
    assert_refused_as_locked(r, dst.url, "taken over")
    assert dst.get(h.COMPLETE) is None
