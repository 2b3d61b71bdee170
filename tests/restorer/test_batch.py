"""Batched small files (restorer/session.py) on a real filesystem that fills up."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import NoSpaceError
from snapferry.restorer import writer
from tests.conftest import tree_digest
from tests.fsutil import fill_disk, mounted_tmpfs

KIB = 1024


def test_enospc_while_batched_files_are_written_stops_cleanly_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No preallocation for small files: the disk filling up shows at their write instead.
    src = tmp_path / "snap"
    rng = random.Random(7)
    for i in range(60):
        f = src / "data" / f"p{i // 5:02d}" / f"f{i % 5}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randrange(1, 16 * KIB)))
    bk = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(bk, str(src), progress="off")
    with mounted_tmpfs(tmp_path / "mnt", "4m") as mnt:
        dst = mnt / "vm"
        filler = mnt / "filler"
        real = writer.ensure_parent
        calls = [0]

        def fill_after_a_few_dirs(*args: object, **kw: object) -> str:
            calls[0] += 1
            if calls[0] == 4 and not filler.exists():
                fill_disk(filler)  # another process fills the disk mid-restore
            return real(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(writer, "ensure_parent", fill_after_a_few_dirs)
        with pytest.raises(NoSpaceError, match="no space left"):
            snapferry.restore(bk, str(dst), progress="off")
        monkeypatch.setattr(writer, "ensure_parent", real)
        filler.unlink()
        assert (dst / "restore-in-progress").exists()
        res = snapferry.restore(bk, str(dst), progress="off")
        assert tree_digest(dst) == tree_digest(src)
        assert res.files_written == 60  # the marker was there: every small file fetched again
        assert not list(dst.rglob("*.tmp*")) and not (dst / "restore-in-progress").exists()
