from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry.errors import BadBackupError
from tests.conftest import tree_digest, write_random

MIB = 1024 * 1024


def test_copy_syncs_and_marks_complete(snapshot_tree: Path, tmp_path: Path) -> None:
    src = f"fs://{tmp_path / 'a'}"
    dst = tmp_path / "b"
    snapferry.backup(src, str(snapshot_tree), max_part_size=MIB, progress="off")
    write_random(dst / "extra" / "0000000000000001_0000000000000000_0000000000000001", 1, 1)
    res = snapferry.copy(src, f"fs://{dst}", progress="off")
    assert res.server_side and res.parts_deleted == 1
    assert tree_digest(tmp_path / "a") == tree_digest(dst)
    again = snapferry.copy(src, f"fs://{dst}", progress="off")
    assert again.parts_copied == 2  # only parts.json and appliedRetention.txt
    out = tmp_path / "out"
    snapferry.restore(f"fs://{dst}", str(out), progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_copy_refuses_incomplete_source(snapshot_tree: Path, tmp_path: Path) -> None:
    src = tmp_path / "a"
    snapferry.backup(f"fs://{src}", str(snapshot_tree), progress="off")
    (src / "backup_complete.ignore").unlink()
    with pytest.raises(BadBackupError, match="incomplete"):
        snapferry.copy(f"fs://{src}", f"fs://{tmp_path / 'b'}", progress="off")
    assert not (tmp_path / "b").exists()
