"""SIGINT and SIGTERM during a throttled backup or restore: a clean, resumable stop.

Expected: exit code 130 (SIGINT) or 143 (SIGTERM), one stderr line that says
how to resume (the exact command), no traceback, and a state the rerun
finishes byte-identical. The waits below are bounds against hanging, not
performance assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crash import harness as h
from tests.servers import S3Server

EXIT_BOUND = 30.0  # seconds; only so a hung process fails the test instead of hanging it
HINT = re.compile(r"^snapferry: interrupted by (SIG\w+).*rerun `([^`]+)`")


def interrupt(argv: list[str], sig: int, after_bytes: int, ready: Callable[[], bool] | None = None,
              settle: float = 0.0) -> subprocess.CompletedProcess[str]:
    """Start argv; once it wrote after_bytes (and ready() holds, and settle seconds passed)
    send sig, and wait (bounded) for it to exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.child_env())
    try:
        h.wait_until(
            lambda: proc.poll() is not None
            or (h.wchar(proc.pid) >= after_bytes and (ready is None or ready())), h.RUN_BOUND, 0.002,
        )
        h.wait_until(lambda: proc.poll() is not None, settle)
        assert proc.poll() is None, "the run ended before the signal; slow it down"
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"no exit within {EXIT_BOUND:.0f} s of {signal.Signals(sig).name}:\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def finished_bytes(target: Path) -> int:
    """Bytes in files a restore has renamed into place (not its .tmp, journal or markers)."""
    total = 0
    for dirpath, _dirs, names in os.walk(target):
        for fn in names:
            if fn in (h.FLOCK, h.RESTORE_MARKER) or fn.endswith((h.TMP_SUFFIX, h.JOURNAL_SUFFIX)):
                continue
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(dirpath, fn)).st_size
    return total


def resume_hint(p: subprocess.CompletedProcess[str], sig: int) -> list[str]:
    """Check the one-line message and return the command it tells the user to rerun."""
    assert p.returncode == 128 + sig, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "interrupt" in ln.lower() or "error" in ln.lower()]
    assert len(lines) == 1, p.stderr[-3000:]
    m = HINT.match(lines[0])
    assert m is not None, lines[0]
    assert m.group(1) == signal.Signals(sig).name
    return shlex.split(m.group(2))


def rerun_hint(cmd: list[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    # The hint says `snapferry ARGS`; run exactly those ARGS with this interpreter's snapferry.
    assert cmd[0] == "snapferry"
    assert cmd[1:] == argv[3:], (cmd, argv)
    return h.run_cli(h.snapferry_argv(*cmd[1:]))


SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


@pytest.mark.parametrize("sig", SIGNALS)
@pytest.mark.parametrize("preallocate", [True, False], ids=["prealloc", "inplace"])
def test_signal_during_restore(ws: h.Workspace, sig: int, preallocate: bool) -> None:
    target = ws.fresh("sig-restore") / "data"
    argv = ws.restore_argv(target, preallocate, ws.rate)
    p = interrupt(argv, sig, ws.total // 3)
    cmd = resume_hint(p, sig)
    assert (target / h.RESTORE_MARKER).exists(), "an interrupted restore must leave restore-in-progress"
    r = rerun_hint(cmd, argv)
    assert r.returncode == 0, r.stderr[-3000:]
    res = h.CycleResult("signal", 0)
    h.check_restored(ws, target, res)
    assert res.identical and not res.problems, res.problems


@pytest.mark.parametrize("sig", SIGNALS)
def test_signal_during_backup(ws: h.Workspace, sig: int) -> None:
    base = ws.fresh("sig-backup")
    dst = base / "bk"
    argv = ws.backup_argv(ws.src, dst, ws.rate)
    p = interrupt(argv, sig, ws.total // 3)
    cmd = resume_hint(p, sig)
    assert not (dst / h.COMPLETE).exists(), "an interrupted backup must not look complete"
    r = rerun_hint(cmd, argv)
    assert r.returncode == 0, r.stderr[-3000:]
    res = h.CycleResult("signal", 0)
    h.check_backup(ws, dst, res)
    assert res.identical and not res.problems, res.problems


def test_sigterm_during_an_s3_restore(ws: h.Workspace, seaweedfs: S3Server) -> None:
    """Workers blocked on sockets, not files: the stop is just as clean."""
    url, opts = seaweedfs.new_remote("bk")
    s3 = ["--custom-s3-endpoint", seaweedfs.endpoint, "--creds-file-path", str(opts.creds_file_path),
          "--config-file-path", str(opts.config_file_path)]
    b = h.run_cli(h.snapferry_argv("backup", "--src", str(ws.src), "--dst", url, "--max-part-size",
                                   str(h.PART_SIZE), *s3))
    assert b.returncode == 0, b.stderr
    target = ws.fresh("sig-s3") / "data"
    argv = h.snapferry_argv("restore", "--src", url, "--dst", str(target), "--progress", "off",
                            "--max-bytes-per-second", str(ws.rate), *s3)
    # The bodies are spliced from the socket into the files, which wchar does not count:
    # wait for a third of the bytes to sit in finished files instead.
    p = interrupt(argv, signal.SIGTERM, 0, ready=lambda: finished_bytes(target) >= ws.total // 3)
    cmd = resume_hint(p, signal.SIGTERM)
    r = h.run_cli(h.snapferry_argv(*cmd[1:], "--json"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["downloaded_bytes"] < ws.total
    assert h.tree_digest(target) == ws.digest


def test_resume_hint_quotes_paths_with_spaces(ws: h.Workspace) -> None:
    target = ws.fresh("sig-space") / "my data"
    argv = ws.restore_argv(target, True, ws.rate)
    cmd = resume_hint(interrupt(argv, signal.SIGTERM, ws.total // 3), signal.SIGTERM)
    assert cmd[1:] == argv[3:], cmd


def test_sigterm_stops_a_throttled_restore_of_big_parts(tmp_path: Path) -> None:
    src = tmp_path / "snap" / h.SNAPSHOT_NAME
    (src / "data").mkdir(parents=True)
    with open(src / "data" / "big.bin", "wb") as f:
        f.write(os.urandom(64 * h.MIB))
    bk = tmp_path / "bk"
    b = h.run_cli(h.snapferry_argv("backup", "--src", str(src), "--dst", f"fs://{bk}", "--max-part-size",
                                   str(8 * h.MIB)))
    assert b.returncode == 0, b.stderr
    argv = h.restore_argv(bk, tmp_path / "out", True, 512 * h.KIB)
    # Once restore-in-progress exists and planning is over, the workers sit in their throttle waits.
    p = interrupt(argv, signal.SIGTERM, 1, ready=(tmp_path / "out" / h.RESTORE_MARKER).exists, settle=1.0)
    resume_hint(p, signal.SIGTERM)
    r = h.run_cli(h.restore_argv(bk, tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert h.tree_digest(tmp_path / "out") == h.tree_digest(src)
