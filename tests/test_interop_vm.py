"""Interoperability with the real VictoriaMetrics tools, 1.79.5 and 1.145.0, byte for byte.

Backups written by `vmbackup` restore with snapferry, backups written by snapferry
restore with `vmrestore`, incremental backups mix both tools, snapferry's snapshot
handling works against a running `victoria-metrics`, a restore killed by one tool is
finished by the other, and a 1.79.5 directory upgraded to 1.145.0 backs up the same way
with both. Every test runs on both versions (the fixture `vm_version`): 1.145.0 keeps an
index per month partition (`data/indexdb/YYYY_MM`) and its snapshots are symlinks. The
binaries come from scripts/setup.sh; when one is missing these tests fail, they never
skip. The fixtures (`vm_server`, `vm_binaries`) come from the tests.vm plugin."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import SnapferryError
from tests.crash import harness as h
from tests.datagen import (
    IGNORED_NAMES,
    assert_same_tree,
    backup_digest,
    make_vm_snapshot,
    snapshot_name,
    tree_digest,
    tree_sizes,
)
from tests.vm import (
    NEW,
    OLD,
    Samples,
    VMServer,
    free_port,
    make_samples,
    merge_samples,
    require_binary,
    run_snapferry,
    run_vmbackup,
    run_vmrestore,
)

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

MiB = 1024 * 1024
GiB = 1024 * MiB
StartVM = Callable[..., VMServer]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def fs(path: Path) -> str:
    return f"fs://{path}"


def backup_objects(root: Path) -> dict[str, str]:
    """Part objects of an fs:// backup (not the *.ignore markers): name -> sha256."""
    return {k: v for k, v in tree_digest(root).items() if not k.endswith(".ignore")}


def expected_object_names(tree: Path, part_size: int = GiB) -> set[str]:
    """The object names vmbackup's layout gives the files of `tree`."""
    names = set()
    for path, size in tree_sizes(tree).items():
        offsets = range(0, size, part_size) if size else range(1)
        for off in offsets:
            names.add(f"{path}/{size:016X}_{off:016X}_{min(part_size, size - off):016X}")
    return names


def parse_rfc3339(s: str) -> datetime:
    assert _RFC3339.match(s), f"{s!r} is not RFC3339"
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def assert_metadata(backup_dir: Path, snapshot: str) -> None:
    """backup_metadata.ignore is JSON with RFC3339 created_at (from the snapshot name) and completed_at."""
    meta = json.loads((backup_dir / "backup_metadata.ignore").read_text())
    created = parse_rfc3339(meta["created_at"])
    completed = parse_rfc3339(meta["completed_at"])
    assert created == datetime.strptime(snapshot.split("-")[0], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert completed.tzinfo is not None
    complete = backup_dir / "backup_complete.ignore"
    assert complete.is_file() and complete.stat().st_size == 0


def assert_no_symlinks(root: Path) -> None:
    links = [p for p in root.rglob("*") if p.is_symlink()]
    assert not links, f"a restore wrote symlinks: {links[:5]}"


def snapshot_dirs(storage: Path) -> list[str]:
    """Snapshot directories left on disk (the top one and the per-table ones)."""
    left = []
    for d in ("snapshots", "data/small/snapshots", "data/big/snapshots", "indexdb/snapshots", "data/indexdb/snapshots"):
        p = storage / d
        if p.is_dir():
            left += [f"{d}/{n}" for n in os.listdir(p)]
    return left


def two_months_of_samples(vm: VMServer) -> Samples:
    """Samples of now and of 40 days ago, ingested and flushed: two month partitions (and,
    on 1.145.0, two per-month index databases)."""
    days_40 = 40 * 86_400_000
    now = make_samples(seed=1, series=3, per_series=200)
    before = make_samples(seed=2, series=3, per_series=200, end_ms=max(t for v in now.values() for t, _ in v) - days_40)
    samples = merge_samples(now, before)
    vm.ingest(samples)
    vm.force_flush()
    return samples


def created_snapshot_name(stderr: str) -> str:
    m = re.search(r"created snapshot (\d{14}-[0-9A-Fa-f]+)", stderr)
    assert m, f"snapferry did not log the snapshot it created:\n{stderr}"
    return m.group(1)


# --- vmbackup writes, snapferry restores ------------------------------------------------


def test_vmbackup_of_live_snapshot_restores_with_snapferry(vm_version: str, vm_server: StartVM, tmp_path: Path) -> None:
    storage, bk, restored = tmp_path / "vm", tmp_path / "bk", tmp_path / "restored"
    vm = vm_server(storage, version=vm_version)
    samples = two_months_of_samples(vm)
    name = vm.snapshot_create()
    run_vmbackup(storage, name, bk, version=vm_version)

    res = snapferry.restore(fs(bk), str(restored), progress="off")

    assert_same_tree(vm.snapshot_dir(name), restored)
    assert_no_symlinks(restored)
    assert not (restored / "restore-in-progress").exists()
    assert res.backup_bytes == sum(tree_sizes(restored).values())
    # The restored directory is a working database with exactly the samples.
    vm2 = vm_server(restored, version=vm_version)
    assert vm2.export('{__name__="snapferry_test"}') == samples


def test_live_snapshot_backups_match_object_for_object(vm_version: str, vm_server: StartVM, tmp_path: Path) -> None:
    """That version's vmbackup and snapferry back up the same live snapshot (on 1.145.0 a tree
    of symlinks into per-month index partitions) to the same objects: names, sizes, bytes."""
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    two_months_of_samples(vm)
    name = vm.snapshot_create()
    if vm_version == NEW:
        snap = vm.snapshot_dir(name)
        assert (snap / "data" / "indexdb").is_symlink()
        assert len([p for p in (snap / "data" / "indexdb").iterdir() if p.is_dir()]) >= 2  # 40 days apart
    run_vmbackup(storage, name, tmp_path / "by-vmbackup", version=vm_version)
    snapferry.backup(fs(tmp_path / "by-snapferry"), storage_data_path=str(storage), snapshot_name=name,
                     progress="off")

    theirs, ours = backup_objects(tmp_path / "by-vmbackup"), backup_objects(tmp_path / "by-snapferry")
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs
    assert set(ours) == expected_object_names(vm.snapshot_dir(name))


@pytest.mark.parametrize("how", ["api", "cli", "cli-skip-preallocation"])
def test_vmbackup_of_generated_snapshot_restores_with_snapferry(vm_version: str, tmp_path: Path, how: str) -> None:
    storage, bk, restored = tmp_path / "vm", tmp_path / "bk", tmp_path / "restored"
    snap = make_vm_snapshot(storage, seed=11, scale_bytes=6 * MiB, big_file_size=2 * MiB + 5)
    assert (snap / "data" / "small").is_symlink() and (snap / "indexdb").is_symlink()
    run_vmbackup(storage, snap.name, bk, version=vm_version)
    assert set(backup_objects(bk)) == expected_object_names(snap)

    if how == "api":
        snapferry.restore(fs(bk), str(restored), progress="off", concurrency=4)
    else:
        extra = ["--skip-file-preallocation"] if how == "cli-skip-preallocation" else []
        run_snapferry("restore", "--src", fs(bk), "--dst", str(restored), "--progress", "off", *extra)

    assert_same_tree(snap, restored)
    assert_no_symlinks(restored)
    leftovers = [p for p in restored.rglob("*") if p.name.endswith(".tmp") or p.name in IGNORED_NAMES - {"flock.lock"}]
    assert not leftovers


def test_snapferry_backup_matches_vmbackup_object_for_object(vm_version: str, tmp_path: Path) -> None:
    """With the real 1 GiB part size, both tools write the same objects with the same bytes.
    A `flock.lock` below the top (1.79.5 keeps one per table and index generation) is no
    part of a backup for either tool."""
    storage = tmp_path / "vm"
    snap = make_vm_snapshot(storage, seed=12, scale_bytes=5 * MiB)
    (snap / "data" / "flock.lock").write_bytes(b"")
    (snap / "data" / "small" / "flock.lock").write_bytes(b"x")
    run_vmbackup(storage, snap.name, tmp_path / "by-vmbackup", version=vm_version)
    snapferry.backup(fs(tmp_path / "by-snapferry"), storage_data_path=str(storage), snapshot_name=snap.name,
                     progress="off")

    theirs, ours = backup_objects(tmp_path / "by-vmbackup"), backup_objects(tmp_path / "by-snapferry")
    assert set(ours) == set(theirs)
    assert ours == theirs
    assert not [n for n in ours if "flock.lock" in n]
    # vmbackup 1.79.5 writes "ok" into its marker, snapferry an empty one: only existence counts.
    assert (tmp_path / "by-vmbackup" / "backup_complete.ignore").is_file()
    assert_metadata(tmp_path / "by-snapferry", snap.name)


# --- snapferry writes, vmrestore restores -----------------------------------------------


@pytest.mark.parametrize("how", ["api", "cli"])
def test_snapferry_multipart_backup_restores_with_vmrestore(vm_version: str, tmp_path: Path, how: str) -> None:
    storage, bk, restored = tmp_path / "vm", tmp_path / "bk", tmp_path / "restored"
    big = 3 * MiB + 17
    snap = make_vm_snapshot(storage, seed=21, scale_bytes=4 * MiB, big_file_size=big)
    big_path = next(p for p, s in tree_sizes(snap).items() if s == big)

    if how == "api":
        snapferry.backup(fs(bk), storage_data_path=str(storage), snapshot_name=snap.name, max_part_size=MiB,
                         progress="off")
    else:
        run_snapferry("backup", "--storage-data-path", str(storage), "--snapshot-name", snap.name,
                      "--dst", fs(bk), "--max-part-size", str(MiB), "--progress", "off")

    objects = backup_objects(bk)
    assert set(objects) == expected_object_names(snap, MiB)
    assert sorted(n for n in objects if n.startswith(big_path + "/")) == [
        f"{big_path}/{big:016X}_{off:016X}_{min(MiB, big - off):016X}" for off in (0, MiB, 2 * MiB, 3 * MiB)
    ]
    assert_metadata(bk, snap.name)

    run_vmrestore(bk, restored, version=vm_version)

    assert_same_tree(snap, restored)


def test_vmrestore_checks_the_marker_snapferry_writes(vm_version: str, tmp_path: Path) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=22, scale_bytes=MiB)
    snapferry.backup(fs(bk), str(snap), progress="off")
    run_vmrestore(bk, tmp_path / "ok", version=vm_version)
    assert_same_tree(snap, tmp_path / "ok")

    (bk / "backup_complete.ignore").unlink()
    refused = run_vmrestore(bk, tmp_path / "refused", check=False, version=vm_version)
    assert refused.returncode != 0
    assert "backup_complete.ignore" in refused.stderr + refused.stdout


# --- snapferry against a running victoria-metrics ----------------------------------------


def test_cli_backup_with_snapshot_create_url_roundtrips_samples(
    vm_version: str, vm_server: StartVM, tmp_path: Path
) -> None:
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    vm = vm_server(storage, version=vm_version)
    samples = make_samples(seed=5, series=5, per_series=300)
    vm.ingest(samples)
    vm.force_flush()

    proc = run_snapferry("backup", "--storage-data-path", str(storage), "--snapshot-create-url",
                         vm.snapshot_create_url, "--dst", fs(bk), "--progress", "off")

    name = created_snapshot_name(proc.stderr)
    assert vm.snapshot_list() == []
    assert snapshot_dirs(storage) == []
    assert_metadata(bk, name)

    by_snapferry, by_vmrestore = tmp_path / "restored", tmp_path / "restored-by-vmrestore"
    run_snapferry("restore", "--src", fs(bk), "--dst", str(by_snapferry), "--progress", "off")
    run_vmrestore(bk, by_vmrestore, version=vm_version)
    assert_same_tree(by_snapferry, by_vmrestore)

    vm.stop()
    vm2 = vm_server(by_snapferry, version=vm_version)
    assert vm2.export('{__name__="snapferry_test"}') == samples


def test_snapshot_is_deleted_when_the_backup_fails(vm_version: str, vm_server: StartVM, tmp_path: Path) -> None:
    storage = tmp_path / "vm"
    vm = vm_server(storage, version=vm_version)
    vm.ingest(make_samples(seed=6, series=2, per_series=50))
    vm.force_flush()
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a directory")
    dst = fs(blocker / "backup")  # its parent is a regular file: the backup fails writing there

    proc = run_snapferry("backup", "--storage-data-path", str(storage), "--snapshot-create-url",
                         vm.snapshot_create_url, "--dst", dst, "--progress", "off", check=False)

    assert proc.returncode != 0, proc.stderr
    assert "snapferry: error:" in proc.stderr and "Traceback" not in proc.stderr
    created_snapshot_name(proc.stderr)  # it failed after the snapshot existed
    assert vm.snapshot_list() == []
    assert snapshot_dirs(storage) == []

    with pytest.raises((SnapferryError, OSError)):
        snapferry.backup(dst, storage_data_path=str(storage), snapshot_create_url=vm.snapshot_create_url,
                         progress="off")
    assert vm.snapshot_list() == []
    assert snapshot_dirs(storage) == []


# --- incremental backups mixing both tools ----------------------------------------------


def test_incremental_snapferry_backup_over_vmbackup_restores_with_vmrestore(
    vm_version: str, vm_server: StartVM, tmp_path: Path
) -> None:
    storage, bk, restored = tmp_path / "vm", tmp_path / "bk", tmp_path / "restored"
    vm = vm_server(storage, version=vm_version)
    first = make_samples(seed=7, series=3, per_series=200, extra_labels={"batch": "1"})
    vm.ingest(first)
    vm.force_flush()
    snap1 = vm.snapshot_create()
    run_vmbackup(storage, snap1, bk, version=vm_version)

    second = make_samples(seed=8, series=3, per_series=200, extra_labels={"batch": "2"})
    vm.ingest(second)
    vm.force_flush()
    snap2 = vm.snapshot_create()
    res = snapferry.backup(fs(bk), storage_data_path=str(storage), snapshot_name=snap2, progress="off")

    assert 0 < res.uploaded_bytes < res.backup_bytes  # unchanged files were kept, not uploaded again
    assert set(backup_objects(bk)) == expected_object_names(vm.snapshot_dir(snap2))
    run_vmrestore(bk, restored, version=vm_version)
    assert_same_tree(vm.snapshot_dir(snap2), restored)

    vm.stop()
    vm2 = vm_server(restored, version=vm_version)
    assert vm2.export('{__name__="snapferry_test"}') == merge_samples(first, second)


def test_incremental_both_ways_on_a_generated_snapshot(vm_version: str, tmp_path: Path) -> None:
    """vmbackup, then snapferry over it, then vmbackup back; restores by the other tool each time."""
    storage, bk, restored = tmp_path / "vm", tmp_path / "bk", tmp_path / "restored"
    old = make_vm_snapshot(storage, seed=31, scale_bytes=4 * MiB, big_file_size=2 * MiB)
    new = make_vm_snapshot(storage, seed=31, scale_bytes=4 * MiB, big_file_size=2 * MiB, name=snapshot_name(32))
    assert tree_digest(old) == tree_digest(new)
    sizes = tree_sizes(new)
    # Change the new snapshot: a deleted file, a grown file, a new part, a rewritten parts.json.
    gone = next(p for p in sizes if p.endswith("/timestamps.bin") and sizes[p] > 0)
    grown = next(p for p in sizes if p.startswith("indexdb/") and p.endswith("/items.bin"))
    parts_json = next(p for p in sizes if p.startswith("data/small/") and p.endswith("/parts.json"))
    (new / gone).unlink()
    with open(new / grown, "ab") as f:
        f.write(os.urandom(1000))
    (new / "data/big/2026_11/7FFFFFFFFFFFFFFF").mkdir(parents=True)
    (new / "data/big/2026_11/7FFFFFFFFFFFFFFF/values.bin").write_bytes(os.urandom(70_000))
    pj = (new / parts_json).read_bytes()
    (new / parts_json).write_bytes(pj[::-1])  # same size, other content
    # parts.json and appliedRetention.txt are always transferred, whatever their size.
    always = {p: s for p, s in sizes.items() if p.endswith(("/parts.json", "/appliedRetention.txt"))}
    changed = sizes[grown] + 1000 + 70_000 + sum(always.values())

    run_vmbackup(storage, old.name, bk, version=vm_version)
    res = snapferry.backup(fs(bk), storage_data_path=str(storage), snapshot_name=new.name, progress="off")
    assert res.uploaded_bytes == changed
    assert res.deleted_bytes == sizes[gone] + sizes[grown]
    assert set(backup_objects(bk)) == expected_object_names(new)
    run_vmrestore(bk, restored, version=vm_version)
    assert_same_tree(new, restored)

    # And back: vmbackup of the old snapshot over snapferry's backup; snapferry restores it
    # incrementally into the same directory.
    run_vmbackup(storage, old.name, bk, version=vm_version)
    assert set(backup_objects(bk)) == expected_object_names(old)
    # vmbackup 1.79.5 predates the always-copy rule for parts.json (upstream issue 5005): it
    # keeps the same-size parts.json already at dst, so that one file of the backup is stale.
    # 1.145.0 copies it again.
    holds = backup_digest(bk)
    stale = {parts_json} if vm_version == OLD else set()
    assert {p for p in holds if holds[p] != tree_digest(old)[p]} == stale
    res2 = snapferry.restore(fs(bk), str(restored), progress="off")
    assert tree_digest(restored) == holds
    run_vmrestore(bk, tmp_path / "by-vmrestore", version=vm_version)
    assert_same_tree(tmp_path / "by-vmrestore", restored)
    assert res2.downloaded_bytes == sizes[gone] + sizes[grown] + sum(always.values())


def test_a_database_upgraded_from_1_79_5_to_1_145_0(vm_server: StartVM, tmp_path: Path) -> None:
    """A data directory written by 1.79.5 (the global `indexdb/`) then run by 1.145.0, which keeps
    that legacy index beside the per-month ones it makes from then on: its snapshot links both.
    vmbackup 1.145.0 and snapferry back it up to the same objects; each tool restores the
    other's backup to the snapshot's tree, which 1.145.0 serves with every series."""
    storage = tmp_path / "vm"
    old = vm_server(storage, version=OLD)
    before = make_samples(seed=41, series=3, per_series=200, extra_labels={"by": "1.79.5"})
    old.ingest(before)
    old.force_flush()
    old.stop()
    new = vm_server(storage, version=NEW)
    after = two_months_of_samples(new)
    name = new.snapshot_create()
    snap = new.snapshot_dir(name)
    assert (snap / "indexdb").is_symlink() and (snap / "data" / "indexdb").is_symlink()
    assert any(p.parts[0] == "indexdb" for p in map(Path, tree_sizes(snap)))  # the legacy index is backed up

    run_vmbackup(storage, name, tmp_path / "by-vmbackup", version=NEW)
    snapferry.backup(fs(tmp_path / "by-snapferry"), storage_data_path=str(storage), snapshot_name=name,
                     progress="off")
    theirs, ours = backup_objects(tmp_path / "by-vmbackup"), backup_objects(tmp_path / "by-snapferry")
    assert ours == theirs
    assert set(ours) == expected_object_names(snap)

    by_snapferry, by_vmrestore = tmp_path / "restored-by-snapferry", tmp_path / "restored-by-vmrestore"
    snapferry.restore(fs(tmp_path / "by-vmbackup"), str(by_snapferry), progress="off")
    run_vmrestore(tmp_path / "by-snapferry", by_vmrestore, version=NEW)
    assert_same_tree(snap, by_snapferry)
    assert_same_tree(snap, by_vmrestore)
    new.stop()
    for restored in (by_snapferry, by_vmrestore):
        server = vm_server(restored, version=NEW)
        assert server.export('{__name__="snapferry_test"}') == merge_samples(before, after)
        server.stop()


@pytest.mark.parametrize("preallocate", [True, False], ids=["prealloc", "inplace"])
def test_a_killed_snapferry_restore_is_finished_by_vmrestore(
    vm_version: str, vm_server: StartVM, tmp_path: Path, preallocate: bool
) -> None:
    """snapferry restore killed half way leaves `restore-in-progress` (the database refuses to
    start) and its `.tmp`/journal files; that version's vmrestore finishes the restore into the
    same directory: the snapshot's tree, nothing of ours left, and the database serves it."""
    storage, bk, target = tmp_path / "vm", tmp_path / "bk", tmp_path / "target"
    vm = vm_server(storage, version=vm_version)
    samples = two_months_of_samples(vm)
    name = vm.snapshot_create()
    snapferry.backup(fs(bk), storage_data_path=str(storage), snapshot_name=name, max_part_size=64 * 1024,
                     progress="off")
    total = sum(tree_sizes(vm.snapshot_dir(name)).values())
    argv = h.restore_argv(bk, target, preallocate, rate=max(total // 4, 64 * 1024))
    attempt = h.run_and_kill(argv, h.written_at_least(total // 3), workdir=tmp_path)
    assert attempt.killed, attempt.describe()
    assert (target / h.RESTORE_MARKER).exists()

    run_vmrestore(bk, target, version=vm_version)

    assert_same_tree(vm.snapshot_dir(name), target)
    assert not [p for p in target.rglob("*") if p.name.endswith((h.TMP_SUFFIX, h.JOURNAL_SUFFIX))]
    assert not (target / h.RESTORE_MARKER).exists()
    vm.stop()
    assert vm_server(target, version=vm_version).export('{__name__="snapferry_test"}') == samples


def test_a_killed_vmrestore_is_finished_by_snapferry(vm_version: str, vm_server: StartVM, tmp_path: Path) -> None:
    """That version's vmrestore killed half way (its `restore-in-progress` left); snapferry
    restore into the same directory finishes it: the snapshot's tree, served by that version."""
    storage, bk, target = tmp_path / "vm", tmp_path / "bk", tmp_path / "target"
    vm = vm_server(storage, version=vm_version)
    samples = two_months_of_samples(vm)
    name = vm.snapshot_create()
    run_vmbackup(storage, name, bk, version=vm_version)
    total = sum(tree_sizes(vm.snapshot_dir(name)).values())
    argv = [require_binary("vmrestore", vm_version), f"-src=fs://{bk}", f"-storageDataPath={target}",
            f"-httpListenAddr=127.0.0.1:{free_port()}", f"-maxBytesPerSecond={max(total // 4, 64 * 1024)}"]
    attempt = h.run_and_kill(argv, h.written_at_least(total // 3), workdir=tmp_path)
    assert attempt.killed, attempt.describe()
    assert (target / h.RESTORE_MARKER).exists()

    snapferry.restore(fs(bk), str(target), progress="off")

    assert_same_tree(vm.snapshot_dir(name), target)
    assert not (target / h.RESTORE_MARKER).exists()
    vm.stop()
    assert vm_server(target, version=vm_version).export('{__name__="snapferry_test"}') == samples


def local_entries(root: Path) -> dict[str, str]:
    """Every entry below root, symlinks not followed: a link, a directory, or a file's sha256."""
    digests = tree_digest(root, ignore=(), follow_links=False)
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        out[rel] = "symlink" if p.is_symlink() else "dir" if p.is_dir() else digests[rel]
    return out


def test_restore_into_the_stopped_database_matches_vmrestore(
    vm_version: str, vm_server: StartVM, tmp_path: Path
) -> None:
    """A restore into the database's own directory, stopped, holding newer parts, its caches and
    a snapshot (on 1.145.0 a tree of symlinks): snapferry leaves exactly what that version's
    vmrestore leaves in a copy of the same directory, and the database serves the backup's series."""
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    vm = vm_server(storage, version=vm_version)
    first = two_months_of_samples(vm)
    run_vmbackup(storage, vm.snapshot_create(), bk, version=vm_version)
    vm.ingest(make_samples(seed=3, series=2, per_series=100, extra_labels={"later": "1"}))
    vm.force_flush()
    vm.snapshot_create()  # left behind in the directory
    vm.stop()
    theirs = tmp_path / "theirs"
    shutil.copytree(storage, theirs, symlinks=True)

    run_vmrestore(bk, theirs, version=vm_version)
    snapferry.restore(fs(bk), str(storage), progress="off")

    assert local_entries(storage) == local_entries(theirs)
    assert vm_server(storage, version=vm_version).export('{__name__="snapferry_test"}') == first
