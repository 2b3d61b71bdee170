"""The command line: exit codes and one-sentence errors, through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapferry.errors import EXIT_BAD_BACKUP, EXIT_FAILURE, EXIT_USAGE
from tests.conftest import tree_digest

MIB = 1024 * 1024


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "snapferry", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, p.stderr
    for w in words:
        assert w in errors[0], errors[0]


def test_backup_restore_json_summary(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = f"fs://{tmp_path / 'bk'}"
    p = run("backup", "--src", str(snapshot_tree), "--dst", bk, "--json", "--max-part-size", str(MIB))
    assert p.returncode == 0, p.stderr
    b = json.loads(p.stdout)
    assert b["action"] == "backup" and b["uploaded_bytes"] == b["backup_bytes"] > 0
    p = run("restore", "--src", bk, "--dst", str(tmp_path / "out"), "--json", "--progress", "log")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["downloaded_bytes"] == b["backup_bytes"] and r["seconds"] > 0
    assert tree_digest(tmp_path / "out") == tree_digest(snapshot_tree)
    p = run("restore", "--src", bk, "--dst", str(tmp_path / "out"))
    assert p.returncode == 0 and "restored" in p.stderr and "downloaded" in p.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("fs://relative/path", ("relative",)),
        ("ftp://host/x", ("unknown scheme",)),
        ("/no/scheme", ("not a remote URL",)),
        ("s3://", ("no bucket",)),
        ("s3://bucket/a/../b", ("'..'",)),
    ],
)
def test_bad_urls(url: str, words: tuple[str, ...], tmp_path: Path) -> None:
    p = run("restore", "--src", url, "--dst", str(tmp_path / "out"))
    assert_one_line_error(p, EXIT_USAGE, url, *words)
    assert not (tmp_path / "out").exists()


def test_missing_marker(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    assert run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}").returncode == 0
    (bk / "backup_complete.ignore").unlink()
    p = run("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "out"))
    assert_one_line_error(p, EXIT_BAD_BACKUP, "backup_complete.ignore", "--skip-backup-complete-check")


def test_dst_is_a_file(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    assert run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}").returncode == 0
    f = tmp_path / "f"
    f.write_text("x")
    assert_one_line_error(run("restore", "--src", f"fs://{bk}", "--dst", str(f)), EXIT_USAGE, str(f), "is a file")


def test_unreadable_source_file(snapshot_tree: Path, tmp_path: Path) -> None:
    victim = snapshot_tree / "indexdb" / "17A3F0C2D1E50051" / "items.bin"
    victim.chmod(0)
    # Root reads anything; drop the capabilities that let it, as a normal user would be.
    p = run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'bk'}",
            prefix=("setpriv", "--bounding-set=-dac_override,-dac_read_search"))
    assert_one_line_error(p, EXIT_FAILURE, str(victim), "Permission denied")
    assert not (tmp_path / "bk" / "backup_complete.ignore").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    p = run("backup", "--dst", f"fs://{tmp_path}/bk")
    assert_one_line_error(p, EXIT_USAGE, "exactly one source")
    p = run("restore", "--src", f"fs://{tmp_path}/bk")
    assert p.returncode == EXIT_USAGE and "--dst" in p.stderr and "Traceback" not in p.stderr
    p = run("backup", "--src", str(tmp_path / "missing"), "--dst", f"fs://{tmp_path}/bk")
    assert_one_line_error(p, EXIT_USAGE, "not a directory")
