"""local.list_source and list_target on real trees: symlinks, loops, specials, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.errors import UsageError
from snapferry.local import list_source, list_target


def test_a_snapshot_of_symlinks_is_listed_through_them(tmp_path: Path) -> None:
    # VictoriaMetrics snapshots are directories of symlinks into the data directory.
    data = tmp_path / "data" / "small" / "2026_11" / "P1"
    data.mkdir(parents=True)
    (data / "values.bin").write_bytes(b"v" * 10)
    (data / "index.bin").write_bytes(b"")
    snap = tmp_path / "snap"
    (snap / "data" / "small" / "2026_11").mkdir(parents=True)
    (snap / "data" / "small" / "2026_11" / "P1").symlink_to(data)
    (snap / "flock.lock").write_bytes(b"")  # the lock is never backed up
    (snap / "data" / "dangling").symlink_to(tmp_path / "nowhere")
    files = list_source(str(snap))
    assert [(f.path, f.size) for f in files] == [
        ("data/small/2026_11/P1/index.bin", 0),
        ("data/small/2026_11/P1/values.bin", 10),
    ]
    # Read through the link's target, found once when the walk entered the linked directory.
    assert files[1].abspath == str(data / "values.bin")
    assert Path(files[1].abspath).read_bytes() == b"v" * 10


def test_a_symlink_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "back").symlink_to(tmp_path / "a")
    with pytest.raises(UsageError, match="symlink loop at 'a/back'"):
        list_source(str(tmp_path))


def test_the_same_directory_twice_through_links_is_not_a_loop(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"12")
    (tmp_path / "one").symlink_to(tmp_path / "real")
    (tmp_path / "two").symlink_to(tmp_path / "real")
    assert [f.path for f in list_source(str(tmp_path))] == ["one/f", "real/f", "two/f"]


def test_a_source_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    for bad in (tmp_path / "file", tmp_path / "missing"):
        with pytest.raises(UsageError, match="is not a directory"):
            list_source(str(bad))


def test_list_target_never_follows_links_and_sets_aside_our_temporaries(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.bin").write_bytes(b"abc")
    (tmp_path / "data" / "b.bin.tmp").write_bytes(b"")
    (tmp_path / "data" / "b.bin.tmp.journal").write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "big").write_bytes(b"x" * 100)
    (tmp_path / "data" / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "restore-in-progress").write_bytes(b"")
    (tmp_path / "flock.lock").write_bytes(b"")
    got = list_target(str(tmp_path))
    assert {k: (e.size, e.is_link) for k, e in got.files.items()} == {
        "data/a.bin": (3, False), "data/link": (0, True), "elsewhere/big": (100, False),
    }
    assert sorted(got.tmp_files) == ["data/b.bin.tmp", "data/b.bin.tmp.journal"]
    assert list_target(str(tmp_path / "missing")).files == {}


def test_lock_files_below_the_top_are_neither_backed_up_nor_deleted(tmp_path: Path) -> None:
    """VictoriaMetrics 1.79.5 keeps a flock.lock per table and per index generation; vmbackup
    skips every flock.lock and vmrestore leaves them where they are: so do backup and restore."""
    for rel in ("flock.lock", "data/flock.lock", "indexdb/18EF/flock.lock", "data/small/2026_12/parts.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [f.path for f in list_source(str(tmp_path))] == ["data/small/2026_12/parts.json"]
    listing = list_target(str(tmp_path))
    assert sorted(listing.files) == ["data/small/2026_12/parts.json"]
    assert "flock.lock" in listing.vm_markers
