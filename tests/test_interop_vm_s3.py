"""Interop over S3: the real vmbackup/vmrestore (1.79.5 and 1.145.0) and snapferry against SeaweedFS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import snapferry
from tests.datagen import make_vm_snapshot, tree_digest
from tests.servers import S3Server
from tests.vm import VMServer, free_port, make_samples, require_binary, run_tool

pytestmark = pytest.mark.vm
MIB = 1024 * 1024
StartVM = Callable[..., VMServer]


def _vm_s3_flags(server: S3Server) -> list[str]:
    assert server.options.creds_file_path and server.options.config_file_path
    return [
        f"-customS3Endpoint={server.endpoint}",
        f"-credsFilePath={server.options.creds_file_path}",
        f"-configFilePath={server.options.config_file_path}",
        f"-httpListenAddr=127.0.0.1:{free_port()}",
        "-loggerLevel=WARN",
    ]


def _run(cmd: list[str]) -> None:
    run_tool(cmd)  # tests/vm.py: reruns a Go tool whose early stop panicked after its work


def test_vmbackup_to_s3_restores_with_snapferry(seaweedfs: S3Server, tmp_path: Path, vm_version: str) -> None:
    data = tmp_path / "vmdata"
    snap = make_vm_snapshot(data, seed=31, scale_bytes=6 * MIB)
    url, opts = seaweedfs.new_remote("vm/daily")
    _run([require_binary("vmbackup", vm_version), f"-storageDataPath={data}", f"-snapshotName={snap.name}",
          f"-dst={url}", *_vm_s3_flags(seaweedfs)])
    out = tmp_path / "out"
    res = snapferry.restore(url, str(out), remote_options=opts, progress="off")
    assert res.downloaded_bytes == res.backup_bytes > 0
    assert tree_digest(out) == tree_digest(snap)


def test_snapferry_backup_to_s3_restores_with_vmrestore(seaweedfs: S3Server, tmp_path: Path, vm_version: str) -> None:
    data = tmp_path / "vmdata"
    snap = make_vm_snapshot(data, seed=32, scale_bytes=6 * MIB, big_file_size=3 * MIB + 5)
    url, opts = seaweedfs.new_remote("vm/daily")
    snapferry.backup(url, storage_data_path=str(data), snapshot_name=snap.name, remote_options=opts,
                     max_part_size=MIB, progress="off")
    out = tmp_path / "out"
    _run([require_binary("vmrestore", vm_version), f"-src={url}", f"-storageDataPath={out}", *_vm_s3_flags(seaweedfs)])
    assert tree_digest(out) == tree_digest(snap)


def test_live_database_both_ways_over_s3(seaweedfs: S3Server, vm_server: StartVM, tmp_path: Path,
                                         vm_version: str) -> None:
    """A live database of that version: its vmbackup restored by snapferry, snapferry's backup
    restored by its vmrestore; both trees are the snapshot's, and that version serves the series."""
    data = tmp_path / "vmdata"
    vm = vm_server(data, version=vm_version)
    samples = make_samples(seed=33, series=4, per_series=150)
    vm.ingest(samples)
    vm.force_flush()
    name = vm.snapshot_create()
    theirs_url, opts = seaweedfs.new_remote("vm/theirs")
    ours_url, _ = seaweedfs.new_remote("vm/ours")
    _run([require_binary("vmbackup", vm_version), f"-storageDataPath={data}", f"-snapshotName={name}",
          f"-dst={theirs_url}", *_vm_s3_flags(seaweedfs)])
    snapferry.backup(ours_url, storage_data_path=str(data), snapshot_name=name, remote_options=opts,
                     max_part_size=MIB, progress="off")
    by_snapferry, by_vmrestore = tmp_path / "by-snapferry", tmp_path / "by-vmrestore"
    snapferry.restore(theirs_url, str(by_snapferry), remote_options=opts, progress="off")
    _run([require_binary("vmrestore", vm_version), f"-src={ours_url}", f"-storageDataPath={by_vmrestore}",
          *_vm_s3_flags(seaweedfs)])
    want = tree_digest(vm.snapshot_dir(name))
    assert tree_digest(by_snapferry) == want
    assert tree_digest(by_vmrestore) == want
    vm.stop()
    for restored in (by_snapferry, by_vmrestore):
        server = vm_server(restored, version=vm_version)
        assert server.export('{__name__="snapferry_test"}') == samples
        server.stop()
