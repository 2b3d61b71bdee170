"""Attacks of round 3: a backup to fs:// on a real filesystem that is (or gets) full.

The CLI must stop with the no-space exit code and one line naming the file, and leave
no temporary files behind in the backup."""

from __future__ import annotations

import json
from pathlib import Path

from snapferry.errors import EXIT_NO_SPACE
from tests.conftest import write_random
from tests.fsutil import fill_disk, mounted_tmpfs
from tests.test_cli import assert_one_line_error, run

KIB = 1024


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "snapferry-tmp" in p.name)


def test_enospc_in_a_direct_io_part_of_a_backup_is_no_space_not_an_internal_error(tmp_path: Path) -> None:
    # One part above the direct-I/O threshold (64 KiB): the disk fills inside the loop that
    # writes it from an aligned buffer. The buffer used to be closed while the failed write's
    # slice of it was still referenced by the traceback, and the BufferError hid the ENOSPC.
    src = tmp_path / "snap"
    write_random(src / "data" / "big.bin", 1024 * KIB, 1)
    with mounted_tmpfs(tmp_path / "mnt", "512k") as mnt:
        p = run("backup", "--src", str(src), "--dst", f"fs://{mnt / 'bk'}", "--progress", "off", "--json")
        assert_one_line_error(p, EXIT_NO_SPACE, "no space", "big.bin")
        out = json.loads(p.stdout)
        assert out["ok"] is False and out["kind"] == "NoSpaceError", out
        assert _leftovers(mnt) == []


def test_enospc_while_the_backup_lease_is_created_leaves_no_temporary_file(tmp_path: Path) -> None:
    src = tmp_path / "snap"
    write_random(src / "data" / "a.bin", 10 * KIB, 2)
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        (mnt / "bk").mkdir()
        fill_disk(mnt / "filler")
        p = run("backup", "--src", str(src), "--dst", f"fs://{mnt / 'bk'}", "--progress", "off", "--json")
        assert_one_line_error(p, EXIT_NO_SPACE, "no space", "snapferry_lock.ignore")
        assert json.loads(p.stdout)["kind"] == "NoSpaceError"
        assert _leftovers(mnt) == []
