"""fs:// refuses every name that would resolve outside its root, whatever the caller checked:
the second wall behind the listing checks of the actions (issue 9, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.errors import BadBackupError
from snapferry.parts import Part
from snapferry.remotes.fs import FsRemote

TAIL = "0000000000000003_0000000000000000_0000000000000003"


class Bytes:
    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self._data = data

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n < 0 else n
        out, self._data = self._data[:n], self._data[n:]
        return out


def part(path: str) -> Part:
    return Part(path, 3, 0, 3, 3)


def test_dot_dot_and_absolute_names_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "a" / "root"
    root.mkdir(parents=True)
    fs = FsRemote(str(root))
    for path in ("../x", "../../x", "sub/../../x", "/abs"):
        with pytest.raises(BadBackupError, match="outside"):
            fs.upload_part(part(path), Bytes(b"abc"))
        with pytest.raises(BadBackupError, match="outside"):
            fs.delete_part(part(path))
    with pytest.raises(BadBackupError, match="outside"):
        fs.write_file("../evil.ignore", b"x")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/root"]


def test_names_through_a_symlink_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / TAIL).write_bytes(b"old")
    root.mkdir()
    (root / "evil").symlink_to(outside)
    (root / "inside").mkdir()
    (root / "ok").symlink_to(root / "inside")  # a link that stays inside is fine
    fs = FsRemote(str(root))
    with pytest.raises(BadBackupError, match="outside"):
        fs.upload_part(part("evil"), Bytes(b"new"))
    with pytest.raises(BadBackupError, match="outside"):
        fs.delete_part(part("evil"))
    with pytest.raises(BadBackupError, match="outside"):
        fs.open_part(part("evil"))
    assert (outside / TAIL).read_bytes() == b"old"
    assert sorted(p.name for p in outside.iterdir()) == [TAIL]
    fs.upload_part(part("ok"), Bytes(b"new"))
    assert (root / "inside" / TAIL).read_bytes() == b"new"


def test_a_root_reached_through_a_symlink_still_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    fs = FsRemote(str(tmp_path / "link"))
    fs.upload_part(part("d"), Bytes(b"abc"))
    assert [p.path for p in fs.list_parts()] == ["d"]
    assert (tmp_path / "real" / "d" / TAIL).read_bytes() == b"abc"
