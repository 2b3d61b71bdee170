"""Attack of round 3: what verify says a restore would do must be what restore does.
An object that is not a part (a newline in its path, say) is skipped by restore, as
vmrestore skips it; verify used to say a restore of such a backup would fail."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tree_digest
from tests.test_cli import assert_one_line_error, run

TAIL = "0000000000000001_0000000000000000_0000000000000001"


def test_verify_says_a_restore_skips_junk_and_restore_does(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    assert run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--progress", "off").returncode == 0
    junk = bk / "data" / "a\nb"
    junk.mkdir(parents=True)
    (junk / TAIL).write_bytes(b"x")
    p = run("verify", "--src", f"fs://{bk}", "--progress", "off")
    assert_one_line_error(p, 3, "first: junk: 'data/a\\nb/", "a restore skips the 1 object(s) that are not parts")
    assert "would fail" not in p.stderr, p.stderr
    out = tmp_path / "out"
    r = run("restore", "--src", f"fs://{bk}", "--dst", str(out), "--progress", "off")
    assert r.returncode == 0, r.stderr
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_verify_says_a_restore_fails_when_it_does(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    assert run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--progress", "off").returncode == 0
    (bk / "data" / "a\nb").mkdir(parents=True)
    (bk / "data" / "a\nb" / TAIL).write_bytes(b"x")
    victim = max((f for f in bk.rglob("*") if f.is_file() and f.name.count("_") == 2), key=lambda f: f.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-1])  # a part shorter than its name says
    p = run("verify", "--src", f"fs://{bk}", "--structure-only", "--progress", "off")
    assert_one_line_error(p, 3, "a restore of it would fail; it skips the 1 object(s) that are not parts")
    r = run("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "out"), "--progress", "off")
    assert r.returncode == 3, r.stderr
