"""fs:// uploads from a local region (what a backup does per part): the bytes, their CRCs
taken on the one pass, the directories made on the way, and what a symlink can reach."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from snapferry import checksums
from snapferry.errors import BadBackupError, RemoteError
from snapferry.parts import Part
from snapferry.remotes.base import LocalRegion
from snapferry.remotes.fs import FsRemote


class NoBody:
    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, n: int = -1) -> bytes:
        raise AssertionError("an upload from a local region reads no body")


def _source(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = random.Random(size).randbytes(size)
    src = tmp_path / f"src-{size}.bin"
    src.write_bytes(data)
    return src, data


# Sizes around the direct-I/O threshold (64 KiB), an empty part, and a part of two CRC blocks.
@pytest.mark.parametrize("size", [0, 1, 8 * 1024 + 3, 64 * 1024 - 1, 64 * 1024, 300_001, checksums.BLOCK + 5])
def test_local_upload_returns_the_crcs_of_the_bytes_it_wrote(tmp_path: Path, size: int) -> None:
    src, data = _source(tmp_path, size + 7)
    fs = FsRemote(str(tmp_path / "bk"))
    p = Part("data/small/2026_11/17A3F0C2D1E50050/values.bin", len(data), 7, size, size)
    seen: list[int] = []
    crcs = fs.upload_part(p, NoBody(size), LocalRegion(str(src), 7, size), seen.append)
    assert (tmp_path / "bk" / p.name).read_bytes() == data[7:]
    assert sum(seen) == size
    # Small parts once went through copy_file_range and came back without CRCs (a second
    # read of the source then hashed them); now every local upload hashes its one pass.
    assert crcs is not None
    assert list(crcs) == list(checksums.file_crcs(str(src), 7, size))
    assert checksums.crc32c_of(crcs) == checksums.crc32c_of(checksums.file_crcs(str(src), 7, size))
    assert not list((tmp_path / "bk").rglob("*.snapferry-tmp"))


def test_a_leftover_tmp_of_a_killed_upload_is_replaced(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 5000)
    fs = FsRemote(str(tmp_path / "bk"))
    p = Part("indexdb/A/items.bin", 5000, 0, 5000, 5000)
    leftover = tmp_path / "bk" / (p.name + ".snapferry-tmp")
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 9000)  # longer than the part: must be truncated, not overwritten in place
    fs.upload_part(p, NoBody(5000), LocalRegion(str(src), 0, 5000))
    assert (tmp_path / "bk" / p.name).read_bytes() == data
    assert not leftover.exists()


@pytest.mark.parametrize("suffix", ["", ".snapferry-tmp"])
def test_a_symlink_at_the_part_or_tmp_name_is_never_written_through(tmp_path: Path, suffix: str) -> None:
    src, data = _source(tmp_path, 4000)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"keep me")
    fs = FsRemote(str(tmp_path / "bk"))
    p = Part("data/f.bin", 4000, 0, 4000, 4000)
    link = tmp_path / "bk" / (p.name + suffix)
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    if suffix:  # the temporary name is opened with O_NOFOLLOW (it was followed before)
        with pytest.raises(RemoteError, match=r"cannot write .*symbolic links"):
            fs.upload_part(p, NoBody(4000), LocalRegion(str(src), 0, 4000))
    else:  # the final name: the rename replaces the link (it was refused before)
        fs.upload_part(p, NoBody(4000), LocalRegion(str(src), 0, 4000))
        assert not link.is_symlink() and link.read_bytes() == data
    assert outside.read_bytes() == b"keep me"


def test_a_directory_symlink_inside_the_root_is_followed_and_one_outside_refused(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 100)
    root = tmp_path / "bk"
    (root / "real").mkdir(parents=True)
    (root / "inside").symlink_to(root / "real")
    (tmp_path / "elsewhere").mkdir()
    (root / "away").symlink_to(tmp_path / "elsewhere")
    fs = FsRemote(str(root))
    p = Part("inside/x/f.bin", 100, 0, 100, 100)
    fs.upload_part(p, NoBody(100), LocalRegion(str(src), 0, 100))
    assert (root / "real" / p.name.removeprefix("inside/")).read_bytes() == data
    with pytest.raises(BadBackupError, match="outside"):
        fs.upload_part(Part("away/x/f.bin", 100, 0, 100, 100), NoBody(100), LocalRegion(str(src), 0, 100))
    assert os.listdir(tmp_path / "elsewhere") == []


def test_listing_skips_uploads_in_progress_and_symlinked_directories(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    fs = FsRemote(str(root))
    src, _data = _source(tmp_path, 1000)
    p = Part("data/a/f.bin", 1000, 0, 1000, 1000)
    fs.upload_part(p, NoBody(1000), LocalRegion(str(src), 0, 1000))
    (root / (Part("data/b/f.bin", 7, 0, 7, 7).name + ".snapferry-tmp")).parent.mkdir(parents=True)
    (root / (Part("data/b/f.bin", 7, 0, 7, 7).name + ".snapferry-tmp")).write_bytes(b"partial")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "g.bin").mkdir(parents=True)
    (elsewhere / "g.bin" / Part("", 3, 0, 3, 3).name.lstrip("/")).write_bytes(b"abc")
    (root / "data" / "linked").symlink_to(elsewhere)  # as os.walk: listed as a name, not entered
    q = Part("data/c/f.bin", 1000, 0, 1000, 1000)
    (root / q.name).parent.mkdir(parents=True)
    (root / q.name).symlink_to(root / p.name)  # a symlinked file counts with its target's size
    assert sorted((x.name, x.actual_size) for x in fs.list_parts()) == [(p.name, 1000), (q.name, 1000)]
