"""Attack of round 5 on partial restore's input: a --since duration reaching before year 1,
and month names VictoriaMetrics never makes (2026_13, 0000_01, 9999_12) in a backup's listing.
Each ended in "internal error" (OverflowError, IllegalMonthError, ValueError)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapferry.errors import EXIT_USAGE
from tests.attack.r5util import backed_up, month_tree
from tests.test_cli import assert_one_line_error, run


@pytest.mark.parametrize("since", ["10000y", "99999999999999y", "3650000d"])
def test_a_since_reaching_before_year_one_selects_every_month(since: str, tmp_path: Path) -> None:
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    p = run("restore", "--src", url, "--dst", str(tmp_path / "db"), "--since", since, "--progress", "off",
            "--json")
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (tmp_path / "db" / "data" / "small").iterdir()) == ["2026_10", "2026_11"]
    assert json.loads(p.stdout)["action"] == "restore"


@pytest.mark.parametrize("odd", ["2026_13", "0000_01", "9999_12", "2026_00"])
def test_an_odd_month_name_in_a_backup_does_not_break_since(odd: str, tmp_path: Path) -> None:
    tree = month_tree(tmp_path / "snap")
    (tree / "data" / "small" / odd / "p1").mkdir(parents=True)
    (tree / "data" / "small" / odd / "p1" / "values.bin").write_bytes(b"odd")
    (tree / "data" / "indexdb" / odd).mkdir(parents=True)
    (tree / "data" / "indexdb" / odd / "items.bin").write_bytes(b"odd index")
    url = backed_up(tree, f"fs://{tmp_path / 'bk'}")
    db = tmp_path / "db"
    p = run("restore", "--src", url, "--dst", str(db), "--since", "2026-11-01", "--progress", "off")
    assert p.returncode == 0, p.stderr
    months = sorted(x.name for x in (db / "data" / "small").iterdir())
    if odd == "9999_12":  # a real (if far) month: newer than --since, so selected
        assert months == ["2026_11", "9999_12"]
    else:  # not a month: kept with the files outside the partitions, never silently dropped
        assert months == sorted(["2026_11", odd])
    assert (db / "data" / "small" / odd / "p1" / "values.bin").read_bytes() == b"odd"
    assert not (db / "data" / "small" / "2026_10").exists()
    if odd != "9999_12":  # and --partitions still refuses the name as a month
        p = run("restore", "--src", url, "--dst", str(tmp_path / "db2"), "--partitions", odd)
        assert_one_line_error(p, EXIT_USAGE, odd, "YYYY_MM")
        assert not (tmp_path / "db2").exists()
