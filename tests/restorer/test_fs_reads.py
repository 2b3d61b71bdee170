"""Reading parts from an fs:// backup for a restore: one openat2 below the root per part and
no lstat when no link is on the way, and a part or directory that is a symlink is still
followed only when it stays inside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapferry.errors import BadBackupError
from snapferry.parts import Part
from snapferry.remotes.fs import FsRemote

TAIL = "0000000000000003_0000000000000000_0000000000000003"


def _read(fs: FsRemote, path: str) -> bytes:
    r = fs.open_part(Part(path, 3, 0, 3, 3))
    try:
        buf = bytearray(3)
        n = r.readinto(memoryview(buf))
        return bytes(buf[:n])
    finally:
        r.close()


def test_reading_many_parts_lstats_nothing_when_no_link_is_on_the_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "bk"
    paths = [f"data/p{d}/f{i}.bin" for d in range(5) for i in range(20)]
    for p in paths:
        (root / p).mkdir(parents=True)
        (root / p / TAIL).write_bytes(p[-7:-4].encode())
    fs = FsRemote(str(root))
    calls: list[str] = []
    real_lstat = os.lstat

    def counting_lstat(path: str, *a: object, **kw: object) -> os.stat_result:
        calls.append(str(path))
        return real_lstat(path, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting_lstat)
    for p in paths:
        assert _read(fs, p) == p[-7:-4].encode()
    monkeypatch.undo()
    # openat2 below the root's descriptor checks every component in the kernel.
    assert calls == []
    fd = fs._root_fd  # the root's descriptor, the one every part was opened below
    real = os.path.realpath(root)
    assert os.readlink(f"/proc/self/fd/{fd}") == real
    fs.close()
    assert fs._root_fd == -1
    try:
        now = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        now = ""
    assert now != real  # closed (its number may since hold another file)
    assert _read(fs, paths[0]) == paths[0][-7:-4].encode()  # opened again when needed
    fs.close()


def test_a_directory_symlink_is_followed_inside_the_root_and_refused_outside(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    outside = tmp_path / "elsewhere"
    (outside / "p").mkdir(parents=True)
    (outside / "p" / TAIL).write_bytes(b"key")
    (root / "in" / "p").mkdir(parents=True)
    (root / "in" / "p" / TAIL).write_bytes(b"abc")
    (root / "ok").symlink_to(root / "in")
    (root / "evil").symlink_to(outside)
    (root / "rel").symlink_to(os.path.join("..", "elsewhere"))
    fs = FsRemote(str(root))
    assert _read(fs, "ok/p") == b"abc"
    for name in ("evil/p", "rel/p", "../elsewhere/p", "in/../../elsewhere/p"):
        with pytest.raises(BadBackupError, match="outside"):
            fs.open_part(Part(name, 3, 0, 3, 3))


def test_a_part_file_that_is_a_symlink_is_followed_inside_the_root_and_refused_outside(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    outside = tmp_path / "secret"
    outside.write_bytes(b"key")
    (root / "in").mkdir(parents=True)
    (root / "in" / "real").write_bytes(b"abc")
    (root / "ok").mkdir()
    (root / "ok" / TAIL).symlink_to(root / "in" / "real")
    (root / "evil").mkdir()
    (root / "evil" / TAIL).symlink_to(outside)
    (root / "rel").mkdir()
    (root / "rel" / TAIL).symlink_to(os.path.join("..", "..", "secret"))
    fs = FsRemote(str(root))
    assert _read(fs, "ok") == b"abc"
    for name in ("evil", "rel"):
        with pytest.raises(BadBackupError, match="outside"):
            fs.open_part(Part(name, 3, 0, 3, 3))


def test_the_directory_cache_holds_shared_directories_not_one_per_file(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    paths = [f"data/p{d}/f{i}.bin" for d in range(3) for i in range(40)]
    for p in paths:
        (root / p).mkdir(parents=True)
        (root / p / TAIL).write_bytes(b"abc")
    fs = FsRemote(str(root))
    for p in paths:
        assert _read(fs, p) == b"abc"
        assert fs.part_path(Part(p, 3, 0, 3, 3)) == str(root / p / TAIL)
    # The root, data and the three pN: every part's own directory (one per file) is left out.
    assert len(fs._real_dirs) == 5
