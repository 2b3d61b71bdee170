"""Attacks of round 3 on fs:// containment: a directory of the backup swapped for a
symlink while a backup runs. fs:// resolves each directory once per run (one lstat per
new directory, not a realpath per part), so the check alone is stale by then; the part
must still never be written outside the root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import snapferry
from snapferry.errors import SnapferryError
from snapferry.remotes.fs import FsRemote
from tests.conftest import write_random


def test_a_directory_swapped_for_a_symlink_mid_backup_gets_no_part_outside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "snap"
    for d in ("a", "b"):
        for i in range(3):
            write_random(src / "data" / d / f"f{i}", 1000 + i, i)
    write_random(src / "data" / "a" / "big", 200_000, 9)  # the direct-I/O path too
    bk, outside = tmp_path / "bk", tmp_path / "outside"
    (outside / "a").mkdir(parents=True)
    (outside / "b").mkdir()
    real = FsRemote._upload_path
    calls = [0]

    def swap_after_the_first_part(self: FsRemote, *a: Any) -> str:
        calls[0] += 1
        if calls[0] == 2:  # the directories of the first part are known (cached) by now
            os.rename(bk / "data", tmp_path / "moved")
            os.symlink(outside, bk / "data")
        return real(self, *a)

    monkeypatch.setattr(FsRemote, "_upload_path", swap_after_the_first_part)
    with pytest.raises(SnapferryError):
        snapferry.backup(f"fs://{bk}", str(src), progress="off", concurrency=1)
    assert calls[0] >= 2
    written = [str(p.relative_to(outside)) for p in outside.rglob("*") if p.is_file()]
    assert written == []
