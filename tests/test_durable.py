"""durable.py on real files: atomic writes in their fsync order (seen by strace), copies, cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from snapferry import durable


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "backup_complete.ignore"
    target.write_bytes(b"old content that is longer")
    durable.write_file_atomic(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup_complete.ignore"]


def test_atomic_write_syncs_the_file_then_renames_then_syncs_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "d" / "meta.json"
    target.parent.mkdir()
    trace = tmp_path / "trace"
    code = f"from snapferry import durable; durable.write_file_atomic({str(target)!r}, b'x' * 100)"
    subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat,fsync,rename,renameat,renameat2",
                    sys.executable, "-c", code], check=True, timeout=120)
    calls = [ln for ln in trace.read_text().splitlines() if str(tmp_path) in ln or "fsync(" in ln]
    # Which descriptor each open returned, so each fsync is tied to a path.
    fds: dict[str, str] = {}
    order: list[str] = []
    for ln in calls:
        body = ln.split(None, 1)[1] if ln[:1].isdigit() else ln
        if body.startswith("openat(") and str(tmp_path) in body:
            path = body.split('"')[1]
            fds[body.rsplit("= ", 1)[1].strip()] = path
        elif body.startswith("fsync("):
            fd = body[len("fsync("):].split(")")[0]
            order.append(f"fsync {fds.get(fd, fd)}")
        elif body.startswith("rename"):
            order.append("rename")
    tmp = str(target) + ".snapferry-tmp"
    assert order == [f"fsync {tmp}", "rename", f"fsync {target.parent}"], order


def test_copy_range_copies_between_offsets_in_one_file_and_across_files(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    src = tmp_path / "src"
    src.write_bytes(data)
    dst = tmp_path / "dst"
    dst.write_bytes(b"\0" * len(data))
    sfd = os.open(src, os.O_RDONLY)
    dfd = os.open(dst, os.O_RDWR)
    try:
        # Two pieces in reverse order, as two threads filling one preallocated file would.
        half = len(data) // 2
        assert durable.copy_range(sfd, half, dfd, half, len(data) - half) == len(data) - half
        assert durable.copy_range(sfd, 0, dfd, 0, half) == half
        # Past the end of the source: a short copy, not an error.
        assert durable.copy_range(sfd, len(data) - 10, dfd, 0, 100) == 10
    finally:
        os.close(sfd)
        os.close(dfd)
    got = dst.read_bytes()
    assert got[10:] == data[10:] and got[:10] == data[-10:]


def _copy_to_append_only(tmp_path: Path, data: bytes) -> bytes:
    """copy_range of data into a destination opened with O_APPEND, which copy_file_range
    refuses (EBADF): the bytes go through the fallback's buffer. Returns what landed."""
    src = tmp_path / "src"
    src.write_bytes(data)
    dst = tmp_path / "dst"
    sfd = os.open(src, os.O_RDONLY)
    dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        assert durable.copy_range(sfd, 0, dfd, 0, len(data)) == len(data)
    finally:
        os.close(sfd)
        os.close(dfd)
    return dst.read_bytes()


def test_copy_range_falls_back_to_read_and_write_where_the_kernel_refuses(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    assert _copy_to_append_only(tmp_path, data) == data


def test_copy_range_fallback_buffers_no_more_than_the_copy(tmp_path: Path) -> None:
    # Across filesystems (EXDEV) every small file takes the fallback: its buffer must
    # fit the file, not be megabytes allocated and zeroed per file.
    data = os.urandom(5_000)
    tracemalloc.start()
    try:
        assert _copy_to_append_only(tmp_path, data) == data
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # was 8 MiB per call; the margin is for other threads of this process


def test_remove_empty_dirs_keeps_files_links_and_the_root(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "keep" / "x").mkdir(parents=True)
    (tmp_path / "keep" / "x" / "file").write_bytes(b"1")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link-holder").mkdir()
    (tmp_path / "link-holder" / "to-elsewhere").symlink_to(tmp_path / "elsewhere")
    removed = durable.remove_empty_dirs(str(tmp_path))
    # a/b/c, a/b, a and the empty `elsewhere`; a directory holding a symlink is not empty.
    assert removed == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "link-holder"]
    assert (tmp_path / "keep" / "x" / "file").exists()
    assert durable.remove_empty_dirs(str(tmp_path / "keep" / "x")) == 0


def test_syncfs_and_fsync_dir_on_real_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    durable.syncfs(str(tmp_path / "f"))
    durable.fsync_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        durable.syncfs(str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError):
        durable.fsync_dir(str(tmp_path / "f"))
