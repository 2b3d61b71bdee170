"""Batched small files (restorer/session.py) on a real filesystem that fills up."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import snapferry
from snapferry import durable
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


def test_thousands_of_fsynced_files_restore_under_a_low_open_files_limit(tmp_path: Path) -> None:
    # Files of 96 KiB are written direct and fsynced one by one by the finishers; reads from
    # a local backup outrun those fsyncs. Each file waiting for its fsync is an open
    # descriptor, so an unbounded backlog ran out of them ("Too many open files") on a
    # 30,000-file restore. With the hard limit at 256 the backlog must stay bounded.
    import resource
    import subprocess
    import sys

    src = tmp_path / "snap"
    rng = random.Random(11)
    for i in range(1000):
        f = src / "data" / f"p{i // 5:03d}" / f"f{i % 5}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(96 * KIB))
    bk = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(bk, str(src), progress="off")
    dst = tmp_path / "vm"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    out = subprocess.run(
        [sys.executable, "-c", "from snapferry.cli.main import entry; entry()", "restore", "--src", bk,
         "--dst", str(dst), "--progress", "off", "--concurrency", "8"],
        capture_output=True, text=True, preexec_fn=low_limit, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert tree_digest(dst) == tree_digest(src)


def test_batched_files_on_a_filesystem_mounted_inside_the_target_are_synced_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One syncfs of the target does not reach a filesystem mounted below it: the batched
    # files there were renamed and the marker removed with their bytes still only in memory.
    src = tmp_path / "snap"
    rng = random.Random(11)
    for i in range(20):
        f = src / ("data" if i % 2 else "indexdb") / f"p{i // 4}" / f"f{i}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randrange(1, 8 * KIB)))
    bk = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(bk, str(src), progress="off")
    dst = tmp_path / "vm"
    synced: list[int] = []
    real = durable.syncfs

    def recorded(path: str) -> None:
        synced.append(os.stat(path).st_dev)
        real(path)

    monkeypatch.setattr(durable, "syncfs", recorded)
    with mounted_tmpfs(dst / "data", "8m") as data:
        res = snapferry.restore(bk, str(dst), progress="off")
        assert res.files_written == 20
        assert tree_digest(dst) == tree_digest(src)
        assert os.stat(data).st_dev != os.stat(dst).st_dev
        assert sorted(synced) == sorted({os.stat(dst).st_dev, os.stat(data).st_dev})
