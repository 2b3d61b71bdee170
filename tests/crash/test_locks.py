"""Two writers on one directory: the second is refused (exit 4) and the first is unharmed.

The restore lock is VictoriaMetrics' own `<dir>/flock.lock`, so a restore is
refused under a running database, and a database cannot start on a directory
being restored. Holders of the lock are read from /proc/locks, so the test
never takes the lock itself. The tests that start a database run on VictoriaMetrics
1.79.5 and 1.145.0 (`vm_version`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapferry.errors import EXIT_BAD_BACKUP, EXIT_LOCKED
from tests.crash import harness as h
from tests.servers import S3Server
from tests.vm import VMServer, free_port, require_binary


def assert_refused_as_locked(p: subprocess.CompletedProcess[str], where: Path | str, *words: str) -> None:
    """Exit 4 and one line naming the place and the reason, no traceback."""
    assert p.returncode == EXIT_LOCKED, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("snapferry:")]
    assert len(lines) == 1, p.stderr
    assert str(where) in lines[0], lines[0]
    for w in words:
        assert w in lines[0], lines[0]


def start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.child_env())


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=h.RUN_BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@contextlib.contextmanager
def paused(proc: subprocess.Popen[str]) -> Iterator[None]:
    """Hold a running writer still (SIGSTOP) while another process meets its lock.

    On a loaded machine a throttled 8 MiB backup could finish while the second
    CLI was still starting; paused, the writer keeps its lock for as long as the
    check takes, however slow the machine is.
    """
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


@pytest.mark.parametrize("preallocate", [True, False], ids=["prealloc", "inplace"])
def test_second_restore_into_the_same_dir_is_refused(ws: h.Workspace, preallocate: bool) -> None:
    target = ws.fresh("lock-restore") / "data"
    first = start(ws.restore_argv(target, preallocate, ws.rate))
    try:
        assert h.wait_until(lambda: first.pid in h.flock_holders(target / h.FLOCK) or first.poll() is not None)
        assert h.wait_until(lambda: h.wchar(first.pid) >= ws.total // 4 or first.poll() is not None)
        assert first.poll() is None, "the first restore ended too soon to overlap"
        before = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
        second = h.run_cli(ws.restore_argv(target, preallocate, 0))
        assert_refused_as_locked(second, target, "locked", "another restore")
        # The refused run touched nothing: the first one's marker and temporaries are still there.
        assert (target / h.RESTORE_MARKER).exists()
        after = {p.relative_to(target).as_posix() for p in target.rglob("*")}
        gone = [p for p in before if p not in after and not p.endswith((h.TMP_SUFFIX, h.JOURNAL_SUFFIX))]
        assert not gone, gone  # (the first restore itself renames its .tmp files meanwhile)
    finally:
        r = finish(first)
    assert r.returncode == 0, r.stderr[-3000:]
    assert h.tree_digest(target) == ws.digest


def test_restore_under_a_running_victoria_metrics_is_refused(
    ws: h.Workspace, vm_server: Callable[..., VMServer], tmp_path: Path, vm_version: str
) -> None:
    storage = tmp_path / "vmdata"
    vm = vm_server(storage, version=vm_version)
    assert vm.healthy()
    # The database holds the very lock file snapferry takes.
    assert vm.proc.pid in h.flock_holders(storage / h.FLOCK)
    before = h.tree_digest(storage, ignore=())
    p = h.run_cli(ws.restore_argv(storage, True, 0))
    assert_refused_as_locked(p, storage, "locked", "VictoriaMetrics")
    assert not (storage / h.RESTORE_MARKER).exists()
    assert h.tree_digest(storage, ignore=()) == before, "a refused restore must not touch the database"
    assert vm.healthy() and vm.proc.poll() is None
    # Once the database is stopped, the same restore goes through.
    vm.stop()
    r = h.run_cli(ws.restore_argv(storage, True, 0))
    assert r.returncode == 0, r.stderr
    assert h.tree_digest(storage) == ws.digest


def test_restore_of_a_backup_being_written_is_refused(ws: h.Workspace) -> None:
    """The marker goes first: a restore never reads a backup that a running backup is changing."""
    base = ws.fresh("lock-readwrite")
    dst = base / "bk"
    shutil.copytree(ws.old_backup, dst)  # complete, with its marker, before the backup starts
    writer = start(ws.backup_argv(ws.src, dst, ws.rate))
    try:
        assert h.wait_until(lambda: h.wchar(writer.pid) >= ws.total // 4 or writer.poll() is not None)
        assert writer.poll() is None, "the backup ended too soon to overlap"
        with paused(writer):
            r = h.run_cli(ws.restore_argv(base / "out", True, 0, src=dst))
        assert r.returncode == EXIT_BAD_BACKUP, r.stderr
        assert h.COMPLETE in r.stderr
    finally:
        w = finish(writer)
    assert w.returncode == 0, w.stderr[-3000:]
    res = h.CycleResult("lock", 0)
    h.check_backup(ws, dst, res)
    assert res.identical and not res.problems, res.problems


def test_second_backup_to_the_same_dst_is_refused(ws: h.Workspace) -> None:
    base = ws.fresh("lock-backup")
    dst = base / "bk"
    first = start(ws.backup_argv(ws.src, dst, ws.rate))
    try:
        assert h.wait_until(lambda: h.wchar(first.pid) >= ws.total // 4 or first.poll() is not None)
        assert first.poll() is None, "the first backup ended too soon to overlap"
        with paused(first):
            second = h.run_cli(ws.backup_argv(ws.old_src, dst, 0))
        assert_refused_as_locked(second, f"fs://{dst}", "another backup", str(first.pid))
    finally:
        r = finish(first)
    assert r.returncode == 0, r.stderr[-3000:]
    res = h.CycleResult("lock", 0)
    h.check_backup(ws, dst, res)
    assert res.identical and not res.problems, res.problems
    # The lease went with the first backup: the next one runs.
    again = h.run_cli(ws.backup_argv(ws.src, dst, 0))
    assert again.returncode == 0, again.stderr


def test_second_backup_to_the_same_s3_dst_is_refused(ws: h.Workspace, seaweedfs: S3Server) -> None:
    url, opts = seaweedfs.new_remote("bk")
    s3 = ["--custom-s3-endpoint", seaweedfs.endpoint, "--creds-file-path", str(opts.creds_file_path),
          "--config-file-path", str(opts.config_file_path), "--progress", "off", "--max-part-size", str(h.PART_SIZE)]
    first = start(h.snapferry_argv("backup", "--src", str(ws.src), "--dst", url,
                                   "--max-bytes-per-second", str(ws.rate), *s3))
    try:
        # Uploads go to sockets, which wchar does not count: wait for the first parts on the server.
        bucket, _, prefix = url.split("://", 1)[1].partition("/")
        client = seaweedfs.client()
        assert h.wait_until(lambda: first.poll() is not None or client.list_objects_v2(
            Bucket=bucket, Prefix=prefix + "/data/").get("KeyCount", 0) >= 5, step=0.05)
        assert first.poll() is None, "the first backup ended too soon to overlap"
        with paused(first):
            second = h.run_cli(h.snapferry_argv("backup", "--src", str(ws.old_src), "--dst", url, *s3))
        assert_refused_as_locked(second, url, "another backup", str(first.pid))
    finally:
        r = finish(first)
    assert r.returncode == 0, r.stderr[-3000:]
    target = ws.fresh("lock-s3") / "out"
    rr = h.run_cli(h.snapferry_argv("restore", "--src", url, "--dst", str(target), *s3[:6]))
    assert rr.returncode == 0, rr.stderr
    assert h.tree_digest(target) == ws.digest


def run_victoria_metrics(storage: Path, version: str) -> subprocess.CompletedProcess[str]:
    """victoria-metrics on storage, expected to refuse to start (bounded, stopped by its PID otherwise)."""
    argv = [require_binary("victoria-metrics", version), f"-storageDataPath={storage}",
            f"-httpListenAddr=127.0.0.1:{free_port()}", "-retentionPeriod=100y"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"victoria-metrics started on {storage}:\n{out[-2000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, "")


def test_victoria_metrics_cannot_start_on_a_dir_being_restored(ws: h.Workspace, vm_version: str) -> None:
    target = ws.fresh("lock-vm-running") / "data"
    first = start(ws.restore_argv(target, True, ws.rate))
    try:
        assert h.wait_until(lambda: h.wchar(first.pid) >= ws.total // 4 or first.poll() is not None)
        assert first.poll() is None, "the restore ended too soon to overlap"
        vm = run_victoria_metrics(target, vm_version)
        assert vm.returncode != 0 and "flock.lock" in vm.stdout, vm.stdout[-2000:]
    finally:
        r = finish(first)
    assert r.returncode == 0, r.stderr[-3000:]
    assert h.tree_digest(target) == ws.digest


@pytest.mark.parametrize("preallocate", [True, False], ids=["prealloc", "inplace"])
def test_victoria_metrics_cannot_start_on_a_killed_restore(ws: h.Workspace, preallocate: bool,
                                                           vm_version: str) -> None:
    target = ws.fresh("lock-vm-killed") / "data"
    a = h.run_and_kill(ws.restore_argv(target, preallocate, ws.rate), h.written_at_least(ws.total // 2),
                       workdir=target.parent)
    assert a.killed, a.describe()
    assert (target / h.RESTORE_MARKER).exists()
    vm = run_victoria_metrics(target, vm_version)
    assert vm.returncode != 0 and h.RESTORE_MARKER in vm.stdout, vm.stdout[-2000:]
    r = h.run_cli(ws.restore_argv(target, preallocate, 0))
    assert r.returncode == 0, r.stderr
    assert not (target / h.RESTORE_MARKER).exists()
    assert h.tree_digest(target) == ws.digest
