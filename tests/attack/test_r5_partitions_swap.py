"""Attacks of round 5 on partitions-swap. First: a symlinked `data/` or partition root in the staging
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


def test_a_swap_stopped_before_its_record_is_finished_by_a_rerun(tmp_path: Path) -> None:
    """The swap writes restore-in-progress, then its record, then renames. Stopped between the
    two (here the record cannot be written: a directory holds its temporary name), the rerun found the
    marker without a record and said to rerun a restore to its end: the swap could never run
    again without removing the marker by hand. Now the marker says it is the swap's."""
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    db, stage = tmp_path / "db", tmp_path / "stage"
    _restore(url, db, "2026_11")
    _restore(url, stage, "2026_10")
    blocker = db / "snapferry-partitions-swap.json.snapferry-tmp"
    blocker.mkdir()
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert (db / "restore-in-progress").exists()  # VictoriaMetrics would refuse to start: good
    assert not (db / "data" / "small" / "2026_10").exists()  # nothing was moved
    blocker.rmdir()
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (db / "data" / "small").iterdir()) == ["2026_10", "2026_11"]
    assert sorted(x.name for x in (db / "data" / "indexdb").iterdir()) == ["2026_10", "2026_11"]
    assert not (db / "restore-in-progress").exists() and not (db / "snapferry-partitions-swap.json").exists()
    # a restore's own marker (vmrestore's, snapferry's: empty) is still refused as before
    (db / "restore-in-progress").write_bytes(b"")
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert p.returncode == 3 and "unfinished restore" in p.stderr, p.stderr


@pytest.mark.parametrize("record", ['{"partitions": null}', '{"partitions": []}', '{"partitions": [1]}',
                                    '{"partitions": "2026_10"}', '{"partitions": ["../../x"]}'])
def test_a_corrupt_swap_record_is_refused_and_the_marker_stays(record: str, tmp_path: Path) -> None:
    """A record naming no month (null, []) finished as "moved 0 partitions" and removed the
    marker and the cache from a directory a swap had been interrupted in; a number in it was an
    internal error. Any record the swap did not write is unreadable (exit 3), nothing changes."""
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    db, stage = tmp_path / "db", tmp_path / "stage"
    _restore(url, db, "2026_11")
    _restore(url, stage, "2026_10")
    (db / "restore-in-progress").write_bytes(b"")
    (db / "snapferry-partitions-swap.json").write_text(record)
    (db / "cache").mkdir()
    (db / "cache" / "rollupResult").write_bytes(b"cached")
    before = {d: tree_digest(d) for d in (db, stage)}
    p = run("partitions-swap", "--stage", str(stage), "--dst", str(db))
    assert_one_line_error(p, 3, "snapferry-partitions-swap.json", "unreadable", "check")
    assert {d: tree_digest(d) for d in (db, stage)} == before
    assert (db / "restore-in-progress").exists()
