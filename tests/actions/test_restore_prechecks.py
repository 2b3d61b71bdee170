"""Restore prechecks (issue 9 items 4, 5, 8; issue 11 item 4): a refused restore, and a
dry run, leave the target exactly as it was; the free-space check counts what the
restore frees first; a directory that is no data directory is not wiped without --force."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import (
    EXIT_BAD_BACKUP,
    EXIT_LOCKED,
    EXIT_NO_SPACE,
    EXIT_USAGE,
    LockedError,
    NoSpaceError,
    SnapferryError,
    UsageError,
)
from snapferry.restorer import writer
from snapferry.restorer.downloader import Tuning
from tests.conftest import tree_digest, write_random
from tests.fsutil import fill_disk, mounted_tmpfs, tree_state
from tests.servers import S3Server, free_port
from tests.vm import VMServer, make_samples

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


@pytest.fixture
def backup_dir(snapshot_tree: Path, tmp_path: Path) -> Path:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    return bk


def _vm_data_dir(root: Path) -> Path:
    """What a stopped VictoriaMetrics leaves: flock.lock, data/, indexdb/, its files."""
    write_random(root / "data" / "small" / "2026_10" / "OLDPART" / "values.bin", 5000, 7)
    write_random(root / "indexdb" / "OLD" / "items.bin", 3000, 8)
    (root / "flock.lock").write_bytes(b"")
    return root


def _restore(src: str, dst: Path, **kw: object) -> snapferry.RestoreResult:
    return snapferry.restore(src, str(dst), progress="off", **kw)  # type: ignore[arg-type]


def _break(bk: Path, how: str) -> None:
    pdir = bk / VALUES
    size = 3 * MIB + 17
    if how == "no-marker":
        (bk / "backup_complete.ignore").unlink()
    elif how == "gap":
        (pdir / f"{size:016X}_{MIB:016X}_{MIB:016X}").unlink()
    elif how == "unsafe-name":  # a name the restore keeps for its own in-progress files
        p = bk / "data" / "evil.bin.tmp" / f"{1:016X}_{0:016X}_{1:016X}"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")


REFUSALS: list[tuple[str, int]] = [
    ("mistyped-src", EXIT_BAD_BACKUP),
    ("no-marker", EXIT_BAD_BACKUP),
    ("gap", EXIT_BAD_BACKUP),
    ("unsafe-name", EXIT_BAD_BACKUP),
    ("no-space", EXIT_NO_SPACE),
]


@pytest.mark.parametrize("target", ["vm-data-dir", "absent"])
@pytest.mark.parametrize(("how", "code"), REFUSALS)
def test_a_refused_restore_leaves_the_target_exactly_as_it_was(
    backup_dir: Path, tmp_path: Path, target: str, how: str, code: int
) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "5m" if how == "no-space" else "64m") as mnt:
        dst = mnt / "vm"
        if target == "vm-data-dir":
            _vm_data_dir(dst)
        src = f"fs://{backup_dir}"
        if how == "mistyped-src":
            src = f"fs://{backup_dir}-typo"
        else:
            _break(backup_dir, how)
        before = tree_state(dst)
        with pytest.raises(SnapferryError) as e:
            _restore(src, dst)
        assert e.value.exit_code == code, e.value
        assert tree_state(dst) == before  # no restore-in-progress, no flock.lock, no directory


def test_a_missing_bucket_or_unreachable_endpoint_leaves_no_trace(seaweedfs: S3Server, tmp_path: Path) -> None:
    dst = _vm_data_dir(tmp_path / "vm")
    before = tree_state(dst)
    missing = f"s3://{'nobucket-' + os.urandom(4).hex()}/vm"
    with pytest.raises(SnapferryError, match="bucket"):
        _restore(missing, dst, remote_options=seaweedfs.options)
    assert tree_state(dst) == before
    dead = dataclasses.replace(
        seaweedfs.options, custom_s3_endpoint=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(SnapferryError):
        _restore("s3://bucket/vm", dst, remote_options=dead, retry=snapferry.RetryPolicy(attempts=1))
    assert tree_state(dst) == before
    fresh = tmp_path / "fresh"
    with pytest.raises(SnapferryError, match="bucket"):
        _restore(missing, fresh, remote_options=seaweedfs.options)
    assert not fresh.exists()


def test_victoria_metrics_starts_on_its_data_directory_after_a_refused_restore(
    vm_server: Callable[..., VMServer], backup_dir: Path, tmp_path: Path, vm_version: str
) -> None:
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    samples = make_samples(seed=9, series=3, per_series=100)
    vm.ingest(samples)
    vm.force_flush()
    vm.stop()
    before = tree_state(storage)
    with pytest.raises(SnapferryError) as e:
        _restore(f"fs://{backup_dir}-typo", storage)  # a mistyped --src
    assert e.value.exit_code == EXIT_BAD_BACKUP
    assert tree_state(storage) == before
    assert vm_server(storage, version=vm_version).export('{__name__="snapferry_test"}') == samples  # no marker


# --- 9.8: the wrong directory --------------------------------------------------------------


def test_a_directory_that_is_no_data_directory_is_not_wiped_without_force(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    write_random(home / "notes.txt", 100, 1)
    write_random(home / "projects" / "thesis.tex", 200, 2)
    write_random(home / "download.tmp", 50, 3)  # as /tmp holds: not a trace of ours
    before = tree_state(home)
    with pytest.raises(UsageError) as e:
        _restore(f"fs://{backup_dir}", home)
    msg = str(e.value)
    assert e.value.exit_code == EXIT_USAGE
    assert "would delete 3 files" in msg and "'notes.txt'" in msg and "--force" in msg, msg
    assert tree_state(home) == before
    _restore(f"fs://{backup_dir}", home, force=True)
    assert tree_digest(home) == tree_digest(snapshot_tree)


@pytest.mark.parametrize("trace", ["flock.lock", "data/", "indexdb/", "restore-in-progress", "x.bin.tmp.journal"])
def test_a_data_directory_or_an_earlier_restore_is_restored_without_force(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path, trace: str
) -> None:
    dst = tmp_path / "vm"
    write_random(dst / "stale.bin", 100, 1)
    if trace.endswith("/"):
        write_random(dst / trace / "old" / "f.bin", 10, 2)
    else:
        write_random(dst / trace, 10, 3)
    res = _restore(f"fs://{backup_dir}", dst)
    assert res.files_deleted >= 1
    assert tree_digest(dst) == tree_digest(snapshot_tree)


def test_an_empty_directory_needs_no_force(snapshot_tree: Path, backup_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "empty"
    dst.mkdir()
    res = _restore(f"fs://{backup_dir}", dst)  # nothing to delete: nothing at risk
    assert res.files_deleted == 0
    assert tree_digest(dst) == tree_digest(snapshot_tree)


# --- 9.4: free space ---------------------------------------------------------------------


def _other_snapshot(root: Path) -> Path:
    """A snapshot of the same size as snapshot_tree whose files all have other names
    (VictoriaMetrics names parts by id: a newer backup mostly has new paths)."""
    part = root / "data" / "small" / "2026_12" / "27A3F0C2D1E50050"
    write_random(part / "values.bin", 3 * MIB + 17, 11)
    write_random(part / "timestamps.bin", 700_000, 12)
    write_random(part / "index.bin", 4096, 13)
    (part / "metaindex.bin").write_bytes(b"")
    write_random(root / "indexdb" / "27A3F0C2D1E50051" / "items.bin", 2 * MIB, 14)
    return root


def test_restore_over_an_older_restore_on_a_nearly_full_fs(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path
) -> None:
    newer = _other_snapshot(tmp_path / "newer")
    bk2 = f"fs://{tmp_path / 'bk2'}"
    snapferry.backup(bk2, str(newer), max_part_size=MIB, progress="off")
    with mounted_tmpfs(tmp_path / "mnt", "9m") as mnt:  # one restore (5.7 MiB) fits, two do not
        dst = mnt / "vm"
        _restore(f"fs://{backup_dir}", dst)
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize < 5 * MIB
        res = _restore(bk2, dst)
        assert res.files_deleted == 7
        assert tree_digest(dst) == tree_digest(newer)


def test_a_rerun_after_enospc_counts_the_stale_tmp_files_as_free(
    snapshot_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One part per file: what the failed run preallocated has no journal and is discarded.
    bk = f"fs://{tmp_path / 'bk1'}"
    snapferry.backup(bk, str(snapshot_tree), progress="off")
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mnt:
        dst = mnt / "vm"
        filler = mnt / "filler"
        real = writer.preallocate
        calls = [0]

        def fill_before_the_last_file(fd: int, size: int, name: str) -> None:
            # Another process fills the disk while the other files are being written
            # (throttled, so they are still .tmp): the last file's preallocation fails.
            calls[0] += size > 0
            if calls[0] == 6 and not filler.exists():
                fill_disk(filler)
            real(fd, size, name)

        monkeypatch.setattr(writer, "preallocate", fill_before_the_last_file)
        with pytest.raises(NoSpaceError):
            # Every file preallocated: small ones are otherwise batched, without preallocation.
            # One file per take, so the last file is opened while the big ones are still
            # being written (grouped, it could wait behind them until they were done).
            _restore(bk, dst, max_bytes_per_second=2 * MIB,
                     tuning=Tuning(batch_small_files=False, small_jobs_per_take=1))
        monkeypatch.setattr(writer, "preallocate", real)
        filler.unlink()
        assert len(list(dst.rglob("*.tmp"))) >= 2
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize < 5947033  # the stale .tmps hold what the rerun needs
        _restore(bk, dst)
        assert tree_digest(dst) == tree_digest(snapshot_tree)
        assert not list(dst.rglob("*.tmp*"))


# --- 11.4: dry run -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["vm-data-dir", "absent"])
def test_dry_run_prints_the_plan_and_changes_nothing(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path, target: str
) -> None:
    dst = tmp_path / "vm"
    if target == "vm-data-dir":
        _vm_data_dir(dst)
        (dst / "restore-in-progress").write_bytes(b"")
        write_random(dst / "stale.bin.tmp", 4096, 9)
    before = tree_state(dst)
    plan = snapferry.restore_dry_run(f"fs://{backup_dir}", str(dst))
    assert tree_state(dst) == before
    d = plan.to_dict()
    assert d["dry_run"] is True and d["dst_exists"] is (target != "absent")
    if target == "vm-data-dir":
        assert sorted(f.path for f in plan.delete) == [
            "data/small/2026_10/OLDPART/values.bin", "indexdb/OLD/items.bin"]
        assert d["bytes_to_delete"] == 8000 and plan.delete_tmp == ("stale.bin.tmp",)
        assert plan.space_freed >= 8000 + 4096
    else:
        assert plan.delete == ()
    assert len(plan.download) == 7 and plan.bytes_to_download == plan.backup_bytes == 5947033
    assert plan.space_needed == 5947033 and plan.space_free > 0 and plan.bytes_kept == 0
    # The real restore then does what the dry run said.
    res = _restore(f"fs://{backup_dir}", dst)
    assert res.downloaded_bytes == plan.bytes_to_download and res.files_deleted == len(plan.delete)
    again = snapferry.restore_dry_run(f"fs://{backup_dir}", str(dst))
    assert again.bytes_kept == again.backup_bytes - again.bytes_to_download > 0
    assert tree_digest(dst) == tree_digest(snapshot_tree)


def test_dry_run_reports_a_running_database_and_refusals(backup_dir: Path, tmp_path: Path) -> None:
    dst = _vm_data_dir(tmp_path / "vm")
    fd = os.open(dst / "flock.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running VictoriaMetrics holds it
    before = tree_state(dst)
    try:
        with pytest.raises(LockedError) as e:
            snapferry.restore_dry_run(f"fs://{backup_dir}", str(dst))
        assert e.value.exit_code == EXIT_LOCKED
    finally:
        os.close(fd)
    home = tmp_path / "home"
    write_random(home / "notes.txt", 10, 1)
    refuse: Callable[[], object] = lambda: snapferry.restore_dry_run(f"fs://{backup_dir}", str(home))  # noqa: E731
    with pytest.raises(UsageError, match="--force"):
        refuse()
    assert tree_state(dst) == before
