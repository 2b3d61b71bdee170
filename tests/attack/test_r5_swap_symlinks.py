"""Attack of round 5 on partitions-swap: a symlinked `data/` or partition root in the staging
or the database directory. The renames followed it: months were taken out of (or put into) a
directory outside the two named, and the swap reported success. Refused at start (exit 2),
nothing moved, no restore-in-progress left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from snapferry.errors import EXIT_USAGE
from tests.attack.r5util import backed_up, month_tree
from tests.conftest import tree_digest
from tests.test_cli import assert_one_line_error, run


def _restore(url: str, dst: Path, months: str) -> None:
    p = run("restore", "--src", url, "--dst", str(dst), "--partitions", months, "--progress", "off")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("link", ["stage:data", "stage:data/small", "dst:data", "dst:data/indexdb"])
def test_swap_refuses_a_symlinked_root(link: str, tmp_path: Path) -> None:
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    db, stage, outside = tmp_path / "db", tmp_path / "stage", tmp_path / "outside"
    _restore(url, db, "2026_11")
    _restore(url, stage, "2026_10")
    side, sub = link.split(":")
    top = stage if side == "stage" else db
    # the real directory moves outside both; the symlink takes its place
    (outside / sub).parent.mkdir(parents=True)
    shutil.move(top / sub, outside / sub)
    (top / sub).symlink_to(outside / sub, target_is_directory=True)
    before = {d: tree_digest(d) for d in (db, stage, outside)}
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert_one_line_error(p, EXIT_USAGE, str(top / sub), "symlink")
    assert {d: tree_digest(d) for d in (db, stage, outside)} == before
    assert not (db / "restore-in-progress").exists()


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_swap_refuses_a_staged_month_whose_data_is_a_symlink_or_a_file(kind: str, tmp_path: Path) -> None:
    """The index of the month moved, its data/small (a symlink, or a file) was skipped as if an
    interrupted run had moved it: the swap reported success with a month that had no data."""
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    db, stage, outside = tmp_path / "db", tmp_path / "stage", tmp_path / "outside"
    _restore(url, db, "2026_11")
    _restore(url, stage, "2026_10")
    month = stage / "data" / "small" / "2026_10"
    outside.mkdir()
    shutil.move(month, outside / "2026_10")
    if kind == "symlink":
        month.symlink_to(outside / "2026_10", target_is_directory=True)
    else:
        month.write_bytes(b"not a partition")
    before = {d: tree_digest(d) for d in (db, stage, outside)}
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert_one_line_error(p, EXIT_USAGE, str(month), "symlink or not a directory")
    assert {d: tree_digest(d) for d in (db, stage, outside)} == before
    assert not (db / "data" / "indexdb" / "2026_10").exists()
    assert not (db / "restore-in-progress").exists()
