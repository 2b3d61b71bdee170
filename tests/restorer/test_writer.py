"""TargetFile on real files: direct writes, the unaligned rest, and the fallback."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from snapferry import beneath, directio
from snapferry.parts import Part
from snapferry.restorer import writer
from snapferry.restorer.bytepath import choose_byte_path
from snapferry.restorer.planner import FileMode, FilePlan
from snapferry.restorer.session import RestoreSession
from snapferry.restorer.writer import TargetFile

KIB = 1024


def _target(root: Path, size: int, direct_min: int) -> TargetFile:
    part = Part("d/f.bin", size, 0, size, size)
    plan = FilePlan("d/f.bin", size, [part], FileMode.NEW, all_parts=[part])
    path = choose_byte_path(size, direct_min, zero_copy=True, checked=False)
    return TargetFile(str(root), plan, RestoreSession(str(root)), path)


def _direct_works(d: Path) -> bool:
    """Asked of the filesystem itself, not of the code under test."""
    probe = d / "probe"
    probe.touch()
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True


def test_direct_blocks_and_an_unaligned_tail_land_exactly(tmp_path: Path) -> None:
    size = 3 * 64 * KIB + 1234  # three aligned blocks, then a tail no device block divides
    data = random.Random(1).randbytes(size)
    tf = _target(tmp_path, size, direct_min=1)
    tf.open()
    assert tf.direct == _direct_works(tmp_path)
    buf = directio.buffer(64 * KIB)
    for off in range(0, size, 64 * KIB):
        n = min(64 * KIB, size - off)
        buf[:n] = data[off : off + n]
        tf.pwrite(memoryview(buf)[:n], off)
    assert tf.wrote(tf.plan.parts[0], size)
    tf.finish()
    assert (tmp_path / "d" / "f.bin").read_bytes() == data
    assert not (tmp_path / "d" / "f.bin.tmp").exists()


def test_a_refused_direct_write_goes_through_the_page_cache(tmp_path: Path) -> None:
    size = 128 * KIB
    data = random.Random(2).randbytes(size)
    tf = _target(tmp_path, size, direct_min=1)
    tf.open()
    was_direct = tf.direct
    # An odd buffer address: O_DIRECT refuses it with EINVAL; the bytes must still land.
    odd = bytearray(size + 1)
    odd[1:] = data
    tf.pwrite(memoryview(odd)[1:], 0)
    assert not tf.direct  # refused once, so the page cache from now on
    assert tf.dfd >= 0 or not was_direct  # still open: other writers may hold it
    tf.wrote(tf.plan.parts[0], size)
    tf.finish()
    assert tf.dfd == -1
    assert (tmp_path / "d" / "f.bin").read_bytes() == data


def test_small_files_are_not_opened_for_direct_io(tmp_path: Path) -> None:
    tf = _target(tmp_path, 10 * KIB, direct_min=64 * KIB)
    tf.open()
    assert tf.dfd == -1 and not tf.direct
    tf.pwrite(memoryview(b"x" * 10 * KIB), 0)
    tf.wrote(tf.plan.parts[0], 10 * KIB)
    tf.finish()
    assert (tmp_path / "d" / "f.bin").read_bytes() == b"x" * 10 * KIB


def test_ensure_parent_looks_once_at_a_directory_another_worker_made_and_replaces_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "vm"
    (root / "data" / "p1").mkdir(parents=True)  # made by another worker a moment ago
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "data" / "p2").symlink_to(outside)  # never followed: replaced by a directory
    looks: list[str] = []
    real_stat, real_lstat = os.stat, os.lstat

    def stat(path: str, *a: object, **kw: object) -> os.stat_result:
        looks.append(str(path))
        return real_stat(path, *a, **kw)  # type: ignore[arg-type]

    def lstat(path: str, *a: object, **kw: object) -> os.stat_result:
        looks.append(str(path))
        return real_lstat(path, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    made: set[str] = set()
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    d, fd = writer.ensure_parent(root_fd, str(root), "data/p1/f.bin", made)
    os.close(fd)
    assert d == str(root / "data" / "p1")
    assert looks == ["data", "p1"]  # one look each (relative to its parent's descriptor), no more
    os.close(writer.ensure_parent(root_fd, str(root), "data/p2/f.bin", made)[1])
    monkeypatch.undo()
    assert (root / "data" / "p2").is_dir() and not (root / "data" / "p2").is_symlink()
    assert list(outside.iterdir()) == []
    # Once made, a directory swapped for a symlink is refused, not followed.
    (root / "data" / "p2").rmdir()
    (root / "data" / "p2").symlink_to(outside)
    with pytest.raises(OSError) as e:
        writer.ensure_parent(root_fd, str(root), "data/p2/g.bin", made)
    assert beneath.is_link_error(e.value)
    (root / "data").rename(tmp_path / "moved")
    (root / "data").symlink_to(tmp_path / "moved")  # an upper directory this time
    with pytest.raises(OSError) as e:
        writer.ensure_parent(root_fd, str(root), "data/p1/g.bin", made)
    assert beneath.is_link_error(e.value)
    os.close(root_fd)
