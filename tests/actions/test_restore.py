from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import BadBackupError, LockedError, NoSpaceError, UsageError
from snapferry.restorer.journal import Journal
from tests.conftest import tree_digest, write_random
from tests.fsutil import fill_disk, mounted_tmpfs

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


@pytest.fixture
def backup_url(snapshot_tree: Path, tmp_path: Path) -> str:
    url = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(url, str(snapshot_tree), max_part_size=MIB, progress="off")
    return url


def _restore(src: str, dst: Path, **kw: object) -> snapferry.RestoreResult:
    return snapferry.restore(src, str(dst), progress="off", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("inplace", [False, True])
def test_full_restore_is_identical(snapshot_tree: Path, backup_url: str, tmp_path: Path, inplace: bool) -> None:
    dst = tmp_path / "out"
    res = _restore(backup_url, dst, skip_file_preallocation=inplace)
    assert tree_digest(dst) == tree_digest(snapshot_tree)
    assert not (dst / "restore-in-progress").exists()
    assert not list(dst.rglob("*.tmp*"))
    assert res.downloaded_bytes == res.backup_bytes and res.files_total == 7


@pytest.mark.parametrize("inplace", [False, True])
def test_incremental_restore_fetches_only_missing(
    snapshot_tree: Path, backup_url: str, tmp_path: Path, inplace: bool
) -> None:
    dst = tmp_path / "out"
    _restore(backup_url, dst, skip_file_preallocation=inplace)
    (dst / "indexdb" / "17A3F0C2D1E50051" / "items.bin").unlink()
    write_random(dst / "stale" / "deep" / "old.bin", 100, 5)
    os.symlink("/etc", dst / "data" / "etc-link")
    res = _restore(backup_url, dst, skip_file_preallocation=inplace)
    small = len('{"parts":["17A3F0C2D1E50050"]}') + len("1700000000")
    assert res.downloaded_bytes == 2 * MIB + small
    assert res.files_deleted == 2
    assert not (dst / "stale").exists() and not (dst / "data" / "etc-link").is_symlink()
    assert tree_digest(dst) == tree_digest(snapshot_tree)


def test_nothing_changed_restores_nothing_but_the_always_transferred(backup_url: str, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    _restore(backup_url, dst)
    res = _restore(backup_url, dst)
    assert res.parts_downloaded == 2 and res.files_deleted == 0


def test_preallocated_restore_resumes_mid_file_from_journal(
    snapshot_tree: Path, backup_url: str, tmp_path: Path
) -> None:
    dst = tmp_path / "out"
    _restore(backup_url, dst)
    # Turn the finished 4-part file back into what a crash after two parts leaves.
    final = dst / VALUES
    size = final.stat().st_size
    data = bytearray(final.read_bytes())
    data[2 * MIB:] = bytes(size - 2 * MIB)
    final.unlink()
    Path(str(final) + ".tmp").write_bytes(data)
    j = Journal.create(str(final) + ".tmp.journal", size)
    j.record(0, MIB)
    j.record(MIB, MIB)
    j.close()
    with open(str(final) + ".tmp.journal", "ab") as f:
        f.write(b"deadbeef torn")  # a torn last record is ignored
    res = _restore(backup_url, dst)
    assert res.resumed_bytes == 2 * MIB
    assert res.downloaded_bytes == size - 2 * MIB + len('{"parts":["17A3F0C2D1E50050"]}') + len("1700000000")
    assert tree_digest(dst) == tree_digest(snapshot_tree)
    assert not list(dst.rglob("*.tmp*"))


def test_tmp_without_valid_journal_is_discarded(snapshot_tree: Path, backup_url: str, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    _restore(backup_url, dst)
    final = dst / VALUES
    os.rename(final, str(final) + ".tmp")
    Path(str(final) + ".tmp.journal").write_text("garbage\n")
    write_random(dst / "indexdb" / "orphan.bin.tmp", 10, 1)
    res = _restore(backup_url, dst)
    assert res.resumed_bytes == 0
    assert tree_digest(dst) == tree_digest(snapshot_tree)
    assert not list(dst.rglob("*.tmp*"))


def test_inplace_restore_resumes_at_part_granularity(snapshot_tree: Path, backup_url: str, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    _restore(backup_url, dst, skip_file_preallocation=True)
    final = dst / VALUES
    size = final.stat().st_size
    with open(final, "r+b") as f:
        f.truncate(2 * MIB + 1000)  # two whole parts and a torn third
    # What a crash leaves: the marker that says snapferry was writing this file.
    Journal.create(str(final) + ".tmp.journal", size).close()
    res = _restore(backup_url, dst, skip_file_preallocation=True)
    assert res.resumed_bytes == 2 * MIB
    assert tree_digest(dst) == tree_digest(snapshot_tree)
    assert not list(dst.rglob("*.tmp*"))


def test_inplace_restore_rewrites_a_shorter_stale_file(snapshot_tree: Path, backup_url: str, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    write_random(dst / VALUES, 2 * MIB + 1000, 99)  # same path, other bytes, no marker
    res = _restore(backup_url, dst, skip_file_preallocation=True)
    assert res.resumed_bytes == 0
    assert tree_digest(dst) == tree_digest(snapshot_tree)


def test_missing_marker_is_refused_unless_skipped(snapshot_tree: Path, backup_url: str, tmp_path: Path) -> None:
    Path(backup_url[5:], "backup_complete.ignore").unlink()
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.bin").write_bytes(b"x")
    with pytest.raises(BadBackupError, match=r"backup_complete\.ignore"):
        _restore(backup_url, dst)
    assert sorted(p.name for p in dst.iterdir()) == ["keep.bin"]  # no lock file, no marker
    # keep.bin is not the backup's and dst is no data directory: deleting it takes --force.
    with pytest.raises(UsageError, match=r"would delete 1 files in it .* e\.g\. 'keep\.bin'.*--force"):
        _restore(backup_url, dst, skip_backup_complete_check=True)
    assert (dst / "keep.bin").read_bytes() == b"x"
    _restore(backup_url, dst, skip_backup_complete_check=True, force=True)
    assert tree_digest(dst) == tree_digest(snapshot_tree)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        ("gap", "gap"),
        ("overlap", "overlaps"),
        ("short", "broken"),
        ("cover", "cover"),
    ],
)
def test_inconsistent_backup_changes_nothing(backup_url: str, tmp_path: Path, mutate: str, match: str) -> None:
    root = Path(backup_url[5:])
    size = 3 * MIB + 17
    pdir = root / VALUES
    second = pdir / f"{size:016X}_{MIB:016X}_{MIB:016X}"
    if mutate == "gap":
        second.unlink()
    elif mutate == "overlap":
        os.rename(second, pdir / f"{size:016X}_{MIB - 10:016X}_{MIB + 10:016X}")
        (pdir / f"{size:016X}_{MIB - 10:016X}_{MIB + 10:016X}").write_bytes(bytes(MIB + 10))
    elif mutate == "short":
        second.write_bytes(b"short")
    else:
        last = pdir / f"{size:016X}_{3 * MIB:016X}_{17:016X}"
        last.unlink()
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.bin").write_bytes(b"x")
    with pytest.raises(BadBackupError, match=match):
        _restore(backup_url, dst)
    assert sorted(p.name for p in dst.iterdir()) == ["keep.bin"]  # refused before anything was written


def test_target_that_is_a_file_is_refused(backup_url: str, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(UsageError, match="is a file"):
        _restore(backup_url, f)
    assert f.read_bytes() == b"x"


def test_target_inside_backup_and_backup_inside_target_are_refused(backup_url: str, tmp_path: Path) -> None:
    root = Path(backup_url[5:])
    with pytest.raises(UsageError, match="inside the backup"):
        _restore(backup_url, root / "sub")
    with pytest.raises(UsageError, match="inside the restore target"):
        _restore(backup_url, tmp_path)
    assert (root / "backup_complete.ignore").exists()


def test_locked_target_is_refused(backup_url: str, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    fd = os.open(dst / "flock.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(LockedError, match="locked"):
            _restore(backup_url, dst)
        assert not (dst / "restore-in-progress").exists()
    finally:
        os.close(fd)


def test_symlinks_in_target_are_never_followed(snapshot_tree: Path, backup_url: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    dst = tmp_path / "out"
    dst.mkdir()
    os.symlink(outside, dst / "data")  # where the backup needs a real directory
    os.symlink(outside / "precious", dst / "indexdb")
    _restore(backup_url, dst, force=True)
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_bytes() == b"keep me"
    assert not (dst / "data").is_symlink() and (dst / "data").is_dir()
    assert tree_digest(dst) == tree_digest(snapshot_tree)


def test_unsafe_part_paths_are_refused_before_any_change(backup_url: str, tmp_path: Path) -> None:
    from snapferry.local import TargetListing
    from snapferry.parts import Part
    from snapferry.restorer.planner import plan_restore

    for path in ("../escape", "/abs/file", "a/../../b"):
        with pytest.raises(BadBackupError, match="unsafe path"):
            plan_restore([Part(path, 1, 0, 1, 1)], TargetListing({}, []), str(tmp_path), True)


@pytest.fixture
def small_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    with mounted_tmpfs(tmp_path / "tiny", "4m") as mnt:
        yield mnt


def test_enospc_is_a_clear_error(backup_url: str, small_tmpfs: Path) -> None:
    dst = small_tmpfs / "out"
    with pytest.raises(NoSpaceError, match="free space"):
        _restore(backup_url, dst)
    assert not dst.exists()  # refused by the precheck: nothing created


def test_enospc_during_write_is_a_clear_error(backup_url: str, tmp_path: Path) -> None:
    # Fill the disk after the up-front space check, so the writes themselves fail.
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mnt:
        _enospc_during_write(backup_url, mnt)


def _enospc_during_write(backup_url: str, small_tmpfs: Path) -> None:
    dst = small_tmpfs / "out"
    dst.mkdir()
    filler = small_tmpfs / "filler"
    from snapferry.restorer import writer

    real = writer.preallocate

    def fill_then_preallocate(fd: int, size: int, name: str) -> None:
        if not filler.exists():
            fill_disk(filler)
        real(fd, size, name)

    writer.preallocate = fill_then_preallocate  # type: ignore[assignment]
    try:
        with pytest.raises(NoSpaceError, match="free space"):
            _restore(backup_url, dst)
    finally:
        writer.preallocate = real
    assert (dst / "restore-in-progress").exists()
