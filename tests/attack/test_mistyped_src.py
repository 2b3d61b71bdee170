"""Attacks of round 3, as a new user: a mistyped --src names a place that holds nothing.
The error says so (check the URL), not that a backup there is incomplete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapferry.errors import EXIT_BAD_BACKUP
from snapferry.names import BACKUP_COMPLETE_FILE, LEASE_FILE
from tests.conftest import write_random
from tests.test_cli import assert_one_line_error, run


@pytest.mark.parametrize("command", ["restore", "copy"])
def test_a_src_that_holds_nothing_is_named_as_such(command: str, tmp_path: Path) -> None:
    dst = str(tmp_path / "out") if command == "restore" else f"fs://{tmp_path / 'copy'}"
    p = run(command, "--src", f"fs://{tmp_path / 'bakcup'}", "--dst", dst, "--json")
    assert_one_line_error(p, EXIT_BAD_BACKUP, "holds no backup", "check the --src URL")
    assert json.loads(p.stdout)["kind"] == "BadBackupError"


@pytest.mark.parametrize("command", ["restore", "copy"])
def test_a_backup_killed_before_its_first_part_is_called_incomplete(command: str, tmp_path: Path) -> None:
    # What the kill soak found: a backup killed after it took its lease, before any part
    # landed, was called a mistyped URL.
    bk = tmp_path / "bk"
    bk.mkdir()
    (bk / LEASE_FILE).write_text("{}")
    dst = str(tmp_path / "out") if command == "restore" else f"fs://{tmp_path / 'copy'}"
    p = run(command, "--src", f"fs://{bk}", "--dst", dst)
    assert_one_line_error(p, EXIT_BAD_BACKUP, "incomplete", BACKUP_COMPLETE_FILE)


def test_a_src_with_parts_but_no_marker_is_still_called_incomplete(tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    write_random(bk / "data" / "f.bin" / "0000000000000010_0000000000000000_0000000000000010", 16, 1)
    p = run("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "out"))
    assert_one_line_error(p, EXIT_BAD_BACKUP, "incomplete", "--skip-backup-complete-check")
