"""A restore of an encrypted fs:// backup into the backup's own directory (or one that holds
it), however the place is spelled, is refused before anything changes, as for a plain one:
the overlap check once asked the encrypting wrapper whether it was local, got no, and the
restore deleted the backup's parts as "foreign files" of its target."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry import api
from snapferry.errors import EXIT_USAGE, SnapferryError
from snapferry.findings import ProblemKind
from tests.datagen import tree_digest


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_restore_into_its_own_backup_directory_is_refused_and_the_backup_stays(
    snapshot_tree: Path, tmp_path: Path, encrypted: bool
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    kw = {"encryption_key_file": str(key)} if encrypted else {}
    bk = tmp_path / "backups" / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), progress="off", encrypt=encrypted, **kw)
    (tmp_path / "alias").symlink_to(tmp_path / "backups")
    before = tree_digest(bk, ignore=())
    for src, dst in (
        (f"fs://{bk}", bk),  # the same place
        (f"fs://{tmp_path}/x/../backups/bk", bk),  # spelled with '..'
        (f"fs://{bk}", tmp_path / "alias" / "bk"),  # through a symlink
        (f"fs://{bk}", bk.parent),  # a target that holds the backup
        (f"fs://{bk}", bk / "data"),  # a target inside it
    ):
        with pytest.raises(SnapferryError) as refused:
            snapferry.restore(src, str(dst), progress="off", **kw)
        assert refused.value.exit_code == EXIT_USAGE, (src, dst, refused.value)
        assert tree_digest(bk, ignore=()) == before, (src, dst)


def test_an_encrypted_fs_backup_prunes_the_directories_of_its_stale_parts_and_verify_names_a_symlink(
    snapshot_tree: Path, tmp_path: Path
) -> None:
    """What fs:// does for a backup's files (prune the directories stale parts leave, sync
    before the marker, list symlinks) it does for an encrypted one's: the wrapper is no local
    tree for reading bytes, but its files are where they are."""
    key = tmp_path / "key"
    api.keygen(str(key))
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), progress="off", encrypt=True, encryption_key_file=str(key))
    gone = snapshot_tree / "data" / "small" / "2026_11" / "17A3F0C2D1E50050"
    assert (bk / gone.relative_to(snapshot_tree)).is_dir()
    for f in gone.iterdir():
        f.unlink()
    gone.rmdir()
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), progress="off", encrypt=True, encryption_key_file=str(key))
    assert not (bk / gone.relative_to(snapshot_tree)).exists()

    outside = tmp_path / "outside"
    outside.mkdir()
    part = next(p for p in bk.rglob("*") if p.is_file() and p.parent.name != bk.name and "_" in p.name)
    (outside / "x").write_bytes(part.read_bytes())
    part.unlink()
    part.symlink_to(outside / "x")
    result = snapferry.verify(f"fs://{bk}", encryption_key_file=str(key), progress="off")
    assert [(p.part, p.kind) for p in result.problems] == [(str(part.relative_to(bk)), ProblemKind.SYMLINK)]
