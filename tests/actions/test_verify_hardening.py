"""Issue 19 items 6 and 7: verify catches a backup with no parts, a part replaced by a
symlink (fs://), a backup_metadata.ignore that is not JSON and a backup that lost both its
metadata and its manifest, in every mode, through the CLI (exit 3); a restore of a backup
with no parts refuses to empty a data directory without --force, and restore --verify
refuses a backup that lost its metadata and manifest. vmbackup's own backups (both
versions) still verify clean."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import BadBackupError
from snapferry.findings import ProblemKind
from snapferry.names import BACKUP_COMPLETE_FILE, BACKUP_METADATA_FILE, MANIFEST_FILE
from tests.conftest import tree_digest
from tests.vm import run_snapferry

MIB = 1024 * 1024
MODES = (("--structure-only",), (), ("--read-data",))
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


def verify_cli(bk: Path, *mode: str) -> tuple[int, str]:
    p = run_snapferry("verify", "--src", f"fs://{bk}", "--progress", "off", *mode, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stderr


def kinds(bk: Path, **kw: bool) -> set[tuple[ProblemKind, str]]:
    r = snapferry.verify(f"fs://{bk}", progress="off", **kw)  # type: ignore[arg-type]
    return {(p.kind, p.part) for p in r.problems}


@pytest.fixture
def backed_up(snapshot_tree: Path, tmp_path: Path) -> Path:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    return bk


def test_a_backup_with_no_parts_is_a_problem_and_its_restore_refuses_to_empty_a_data_dir(
    backed_up: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / BACKUP_COMPLETE_FILE).write_bytes(b"")  # what vmbackup pointed at a parent prefix leaves
    for mode in MODES:
        code, err = verify_cli(empty, *mode)
        assert code == 3 and "no_parts" in err, (mode, err)
    # A VictoriaMetrics data directory (a restore of a real backup) is not emptied.
    data = tmp_path / "vmdata-restored"
    snapferry.restore(f"fs://{backed_up}", str(data), progress="off")
    before = tree_digest(data)
    p = run_snapferry("restore", "--src", f"fs://{empty}", "--dst", str(data), "--progress", "off", check=False)
    last = p.stderr.splitlines()[-1]
    assert p.returncode == 3 and last.startswith("snapferry: error:") and "no parts" in last, p.stderr
    assert "--force" in last and str(data) in last and "Traceback" not in p.stderr
    assert tree_digest(data) == before
    # Into an empty directory it still succeeds; with --force it empties the directory.
    run_snapferry("restore", "--src", f"fs://{empty}", "--dst", str(tmp_path / "new"), "--progress", "off")
    run_snapferry("restore", "--src", f"fs://{empty}", "--dst", str(data), "--progress", "off", "--force")
    assert not [p for p in data.rglob("*") if p.is_file() and p.name != "flock.lock"]


def test_a_place_holding_nothing_is_not_said_to_hold_markers(tmp_path: Path) -> None:
    """A mistyped URL: nothing is stored there, so the no-parts problem says so (not "only markers")."""
    code, err = verify_cli(tmp_path / "nosuch", "--structure-only")
    assert code == 3 and "no_parts" in err and "nothing at all" in err and "only markers" not in err, err


def test_a_part_replaced_by_a_symlink_is_found_in_every_mode(backed_up: Path, tmp_path: Path) -> None:
    part = next(p for p in (backed_up / VALUES).iterdir())
    copy = tmp_path / "elsewhere"
    shutil.copyfile(part, copy)  # the same bytes: only the link is wrong
    part.unlink()
    os.symlink(copy, part)
    name = str(part.relative_to(backed_up))
    for mode in MODES:
        code, err = verify_cli(backed_up, *mode)
        assert code == 3 and "symlink" in err and name in err, (mode, err)
    assert (ProblemKind.SYMLINK, name) in kinds(backed_up, structure_only=True)


def test_a_metadata_file_that_is_not_json_is_found_in_every_mode(backed_up: Path) -> None:
    (backed_up / BACKUP_METADATA_FILE).write_bytes(b"{not json")
    for mode in MODES:
        code, err = verify_cli(backed_up, *mode)
        assert code == 3 and BACKUP_METADATA_FILE in err and "metadata" in err, (mode, err)
    assert (ProblemKind.METADATA, BACKUP_METADATA_FILE) in kinds(backed_up, read_data=True)


def test_a_backup_that_lost_metadata_and_manifest_does_not_verify_clean(backed_up: Path, tmp_path: Path) -> None:
    (backed_up / BACKUP_METADATA_FILE).unlink()
    (backed_up / MANIFEST_FILE).unlink()
    part = next(p for p in (backed_up / VALUES).iterdir())
    with open(part, "r+b") as f:  # a flipped byte nothing can see now
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))
    for mode in MODES:
        code, err = verify_cli(backed_up, *mode)
        assert code == 3 and "bytes cannot be checked" in err, (mode, err)
    with pytest.raises(BadBackupError, match="bytes cannot be checked"):
        snapferry.restore(f"fs://{backed_up}", str(tmp_path / "out"), progress="off", verify=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
def test_vmbackup_backups_of_both_versions_still_verify_clean(tmp_path: Path, vm_version: str) -> None:
    from tests.datagen import make_vm_snapshot
    from tests.vm import run_vmbackup

    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=5, scale_bytes=MIB, big_file_size=100_000)
    run_vmbackup(storage, snap.name, bk, version=vm_version)
    # A snapferry copy of it keeps its form (the marker as vmbackup wrote it).
    snapferry.copy(f"fs://{bk}", f"fs://{tmp_path / 'copy'}", progress="off")
    for b in (bk, tmp_path / "copy"):
        for mode in MODES:
            assert verify_cli(b, *mode)[0] == 0, (b, mode)
        snapferry.restore(f"fs://{b}", str(tmp_path / "out" / b.name), progress="off", verify=True)
