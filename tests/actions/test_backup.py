from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import UsageError
from tests.conftest import SNAPSHOT_NAME, write_random

MIB = 1024 * 1024


def _objects(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def test_full_backup_layout_and_markers(snapshot_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "bk"
    res = snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    objs = _objects(dst)
    values = "data/small/2026_11/17A3F0C2D1E50050/values.bin"
    size = 3 * MIB + 17
    assert {k for k in objs if k.startswith(values + "/")} == {
        f"{values}/{size:016X}_{off:016X}_{min(MIB, size - off):016X}" for off in range(0, size, MIB)
    }
    assert objs["backup_complete.ignore"] == 0
    meta = json.loads((dst / "backup_metadata.ignore").read_text())
    assert meta["created_at"] == "2026-11-24T12:00:00Z"
    assert meta["completed_at"].endswith("Z")
    empty = "data/small/2026_11/17A3F0C2D1E50050/metaindex.bin/" + "0" * 16 + "_" + "0" * 16 + "_" + "0" * 16
    assert objs[empty] == 0
    assert res.uploaded_bytes == res.backup_bytes and res.parts_uploaded == len(objs) - 3  # 3 .ignore files


def test_incremental_backup_uploads_only_changes(snapshot_tree: Path, tmp_path: Path) -> None:
    dst = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(dst, str(snapshot_tree), max_part_size=MIB, progress="off")
    (snapshot_tree / "indexdb" / "17A3F0C2D1E50051" / "items.bin").unlink()
    write_random(snapshot_tree / "indexdb" / "17A3F0C2D1E50052" / "items.bin", 5000, 9)
    res = snapferry.backup(dst, str(snapshot_tree), max_part_size=MIB, progress="off")
    parts_json = len('{"parts":["17A3F0C2D1E50050"]}')
    retention = len("1700000000")
    # New file, plus the two always-transferred files; the deleted file's two parts go.
    assert res.uploaded_bytes == 5000 + parts_json + retention
    assert res.parts_deleted == 2 and res.deleted_bytes == 2 * MIB
    assert not (tmp_path / "bk" / "indexdb" / "17A3F0C2D1E50051").exists()


def test_broken_remote_part_is_reuploaded(snapshot_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "bk"
    snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    victim = next(p for p in dst.rglob("*") if p.is_file() and p.stat().st_size == MIB)
    victim.write_bytes(victim.read_bytes()[:1000])
    res = snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    assert victim.stat().st_size == MIB
    assert res.parts_deleted == 1 and MIB <= res.uploaded_bytes < 2 * MIB


def test_interrupted_backup_resumes(snapshot_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "bk"
    snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    # What an interrupted run leaves: no marker, some parts missing.
    (dst / "backup_complete.ignore").unlink()
    gone = sorted(p for p in dst.rglob("*") if p.is_file() and p.stat().st_size == MIB)[:2]
    for p in gone:
        p.unlink()
    res = snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    assert (dst / "backup_complete.ignore").exists()
    assert all(p.exists() for p in gone)
    assert res.parts_uploaded == 4  # the two lost parts + parts.json + appliedRetention.txt


def test_origin_is_copied_server_side(snapshot_tree: Path, tmp_path: Path) -> None:
    old = f"fs://{tmp_path / 'old'}"
    snapferry.backup(old, str(snapshot_tree), max_part_size=MIB, progress="off")
    res = snapferry.backup(f"fs://{tmp_path / 'new'}", str(snapshot_tree), origin=old, max_part_size=MIB,
                           progress="off")
    assert res.copied_bytes > 0
    assert res.uploaded_bytes == len('{"parts":["17A3F0C2D1E50050"]}') + len("1700000000")
    assert _objects(tmp_path / "old") == _objects(tmp_path / "new")


def test_backup_by_snapshot_name(snapshot_tree: Path, tmp_path: Path) -> None:
    data = snapshot_tree.parent.parent
    res = snapferry.backup(f"fs://{tmp_path / 'bk'}", storage_data_path=str(data), snapshot_name=SNAPSHOT_NAME,
                           progress="off")
    assert res.backup_bytes > 0
    with pytest.raises(UsageError, match="does not exist"):
        snapferry.backup(f"fs://{tmp_path / 'bk'}", storage_data_path=str(data), snapshot_name="nope")


def test_dst_inside_data_dir_is_refused(snapshot_tree: Path) -> None:
    data = snapshot_tree.parent.parent
    with pytest.raises(UsageError, match="inside"):
        snapferry.backup(f"fs://{data}/backups", storage_data_path=str(data), snapshot_name=SNAPSHOT_NAME)
    assert not (data / "backups").exists()
    with pytest.raises(UsageError, match="inside"):
        snapferry.backup(f"fs://{snapshot_tree}/x", str(snapshot_tree))


def test_source_symlinks_are_followed_and_dangling_ones_skipped(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_random(real / "part" / "values.bin", 5000, 1)
    snap = tmp_path / "snap"
    (snap / "data").mkdir(parents=True)
    os.symlink(real, snap / "data" / "small")
    os.symlink(tmp_path / "nowhere", snap / "data" / "dangling")
    write_random(tmp_path / "f.bin", 10, 2)
    os.symlink(tmp_path / "f.bin", snap / "file-link")
    snapferry.backup(f"fs://{tmp_path / 'bk'}", str(snap), progress="off")
    names = set(_objects(tmp_path / "bk"))
    assert "data/small/part/values.bin/" + f"{5000:016X}_{0:016X}_{5000:016X}" in names
    assert "file-link/" + f"{10:016X}_{0:016X}_{10:016X}" in names
    assert not any("dangling" in n for n in names)
    assert not any(p.is_symlink() for p in (tmp_path / "bk").rglob("*"))


def test_nothing_changed_leaves_the_manifest_alone_and_a_change_rewrites_it(
    snapshot_tree: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "bk"
    snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    manifest = dst / "snapferry_checksums.ignore"
    first = manifest.stat().st_ino
    again = snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    # The same bytes are not written again (fs:// writes a new file and renames it: a new inode).
    assert manifest.stat().st_ino == first
    assert again.parts_uploaded == 2  # parts.json and appliedRetention.txt, always sent
    write_random(snapshot_tree / "indexdb" / "17A3F0C2D1E50052" / "items.bin", 5000, 9)
    snapferry.backup(f"fs://{dst}", str(snapshot_tree), max_part_size=MIB, progress="off")
    assert manifest.stat().st_ino != first
    assert "indexdb/17A3F0C2D1E50052/items.bin/" in manifest.read_text()
