"""A directory of the restore target swapped for a symlink while the restore runs.

The target is checked before anything is written, and each directory is made or looked
at once per run; a swap after that used to be followed, so files were written outside
the target. Every file is now opened, renamed and unlinked through descriptors of its
directory, opened below the target without following any symlink (beneath.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import snapferry
from snapferry.errors import SnapferryError
from snapferry.restorer import writer
from tests.conftest import tree_digest, write_random


@pytest.mark.parametrize("in_place", [False, True])
def test_a_target_directory_swapped_for_a_symlink_mid_restore_gets_nothing_written_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool
) -> None:
    src = tmp_path / "snap"
    for d in ("a", "b", "c"):
        for i in range(4):
            write_random(src / "data" / d / f"f{i}", 1000 + i, i)
    write_random(src / "data" / "c" / "big", 3 << 20, 9)  # a preallocated, journalled file too
    bk = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(bk, str(src), progress="off")
    dst, outside = tmp_path / "vm", tmp_path / "outside"
    for d in ("a", "b", "c"):
        (outside / d).mkdir(parents=True)
    real = writer.ensure_parent
    calls = [0]

    def swap_after_two_files(*a: Any, **kw: Any) -> tuple[str, int]:
        calls[0] += 1
        if calls[0] == 3:  # data/ and the first directories are made (and cached) by now
            os.rename(dst / "data", tmp_path / "moved")
            os.symlink(outside, dst / "data")
        return real(*a, **kw)

    monkeypatch.setattr(writer, "ensure_parent", swap_after_two_files)
    with pytest.raises(SnapferryError, match="replaced by a symlink"):
        snapferry.restore(bk, str(dst), progress="off", concurrency=1, skip_file_preallocation=in_place)
    assert calls[0] >= 3
    assert [p for p in outside.rglob("*") if p.is_file()] == []
    # The symlink is the attacker's: a rerun replaces it by a real directory and completes.
    monkeypatch.setattr(writer, "ensure_parent", real)
    snapferry.restore(bk, str(dst), progress="off", skip_file_preallocation=in_place)
    assert not (dst / "data").is_symlink()
    assert tree_digest(dst) == tree_digest(src)
    assert [p for p in outside.rglob("*") if p.is_file()] == []
