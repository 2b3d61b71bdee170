"""vmbackupmanager's -backupTypeTagName and -deleteAllObjectVersions on real servers.

--backup-type-tag-name: every object the manager writes into a backup carries NAME=<type>,
read back with boto3's get_object_tagging, for uploads into latest/ and for the
server-side copies into each dated backup. --delete-all-object-versions: on a versioned
bucket (moto keeps versions) the parts an incremental backup drops and the backups
retention deletes leave no version and no delete marker; without it they stay, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import snapferry
from snapferry.errors import EXIT_USAGE, UsageError
from snapferry.manager.remotes import DstRemotes
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.parts import Part
from snapferry.remotes import RemoteOptions
from tests.datagen import make_vm_snapshot, tree_digest
from tests.manager.helpers import Feed, StartVM
from tests.manager.sim import SimClock
from tests.remotes.test_contract import BytesBody
from tests.servers import AzuriteServer, GcsServer, RemoteFactory, S3Server
from tests.test_cli_remotes import remote_args, run

T = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
TAG = "VMBackupType"
TYPES = {"latest", "hourly", "daily", "weekly", "monthly"}


def _keys(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _versions(s3: S3Server, bucket: str, prefix: str) -> dict[str, int]:
    """Versions plus delete markers kept for each key under prefix."""
    out: dict[str, int] = {}
    pages = s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            out[v["Key"]] = out.get(v["Key"], 0) + 1
    return out


def _tags(s3: S3Server, bucket: str, key: str) -> dict[str, str]:
    tagset: list[dict[str, Any]] = s3.client().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tagset}


def _manager(vm_server: StartVM, data: Path, url: str, opts: RemoteOptions, clock: SimClock,
             **config: Any) -> tuple[Manager, Feed]:
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(clock.now())
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=url, remote_options=opts, **config), clock=clock)
    return mgr, feed


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_every_object_of_a_backup_carries_its_type_tag(
    server: str, request: pytest.FixtureRequest, vm_server: StartVM, tmp_path: Path
) -> None:
    s3: S3Server = request.getfixturevalue(server)
    bucket = s3.new_bucket()
    url = f"s3://{bucket}/vm-node-0"
    opts = dataclasses.replace(s3.options, backup_type_tag_name=TAG, s3_object_tags={"team": "db"})
    clock = SimClock(T)
    mgr, feed = _manager(vm_server, tmp_path / "vmdata", url, opts, clock)
    try:
        assert mgr.run_once().ok
        # a second run: new parts uploaded into latest/, a new hourly backup copied from it
        feed.ingest_before(T + timedelta(hours=1))
        clock.set(T + timedelta(hours=1))
        assert mgr.run_once().ok
    finally:
        mgr.close()
    # a lock written by the command beside the service is tagged as the service would tag it
    p = run(["manager", "backup", "lock", "daily/2026-11-27", "--dst", url, "--backup-type-tag-name", TAG,
             "--s3-object-tags", "team=db", *remote_args(s3)[4:]], s3.env)
    assert p.returncode == 0, p.stderr
    keys = _keys(s3, bucket, "vm-node-0/")
    assert "vm-node-0/daily/2026-11-27/backup_locked.ignore" in keys
    seen: dict[str, int] = {}
    for key in keys:
        kind = key.split("/")[1]
        if key.count("/") == 1:  # the manager's own files at the root belong to no backup
            assert _tags(s3, bucket, key) == {"team": "db"}, key
            continue
        assert _tags(s3, bucket, key) == {"team": "db", TAG: kind}, key
        seen[kind] = seen.get(kind, 0) + 1
    assert set(seen) == TYPES, seen
    # parts, not only the marker files: every dated backup is a full copy of latest/
    assert min(seen.values()) > 5, seen
    assert any(k.startswith("vm-node-0/hourly/2026-11-27:14/data/") for k in keys), keys


def test_a_tag_name_s3_cannot_carry_stops_the_manager_at_start(tmp_path: Path) -> None:
    base = ["manager", "--storage-data-path", str(tmp_path), "--snapshot-create-url",
            "http://127.0.0.1:9/snapshot/create", "--dst", f"fs://{tmp_path}/backups"]
    p = run([*base, "--backup-type-tag-name", "backup type"], {})
    assert p.returncode == EXIT_USAGE, p.stderr
    assert "Traceback" not in p.stderr and "--backup-type-tag-name 'backup type'" in p.stderr, p.stderr
    p = run([*base, "--backup-type-tag-name", "team", "--s3-object-tags", "team=db"], {})
    assert p.returncode == EXIT_USAGE, p.stderr
    assert "also set by --s3-object-tags" in p.stderr, p.stderr


def test_the_tag_on_fs_is_said_to_do_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "backups").mkdir()
    with caplog.at_level(logging.WARNING, logger="snapferry"):
        remotes = DstRemotes(f"fs://{tmp_path}/backups", RemoteOptions(backup_type_tag_name=TAG))
        remotes.close()
    assert any(f"--backup-type-tag-name {TAG} does nothing on fs://" in r.getMessage() for r in caplog.records)


def test_the_tag_on_gs_is_said_to_be_unmatched_by_lifecycle_rules(
    fake_gcs: GcsServer, caplog: pytest.LogCaptureFixture
) -> None:
    url, opts = fake_gcs.new_remote("vm")
    with fake_gcs.environ(), caplog.at_level(logging.WARNING, logger="snapferry"):
        DstRemotes(url, dataclasses.replace(opts, backup_type_tag_name=TAG)).close()
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "GCS lifecycle rules cannot match" in line and url in line, line


@pytest.mark.parametrize("kind", ["gs", "azblob"])
def test_delete_all_object_versions_is_refused_where_it_cannot_work(
    kind: str, request: pytest.FixtureRequest, snapshot_tree: Path
) -> None:
    server = request.getfixturevalue({"gs": "fake_gcs", "azblob": "azurite"}[kind])
    url = f"{kind}://{server.new_bucket()}/vm"
    p = run(["backup", "--src", str(snapshot_tree), "--dst", url, "--delete-all-object-versions",
             *remote_args(server)], server.env)
    assert p.returncode == EXIT_USAGE, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert f"--delete-all-object-versions (-deleteAllObjectVersions) is not supported for {url}" in p.stderr


@pytest.mark.parametrize("server", ["moto_server", "seaweedfs"])
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
@pytest.mark.parametrize("delete_all", [False, True], ids=["current-only", "all-versions"])
def test_an_incremental_backup_drops_every_version_of_stale_parts(
    delete_all: bool, versioned: bool, server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    s3: S3Server = request.getfixturevalue(server)
    bucket = s3.new_bucket()
    if versioned:
        s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url = f"s3://{bucket}/vm"
    opts = dataclasses.replace(s3.options, delete_all_object_versions=delete_all)
    first = make_vm_snapshot(tmp_path / "a", seed=1, scale_bytes=256 * 1024)
    second = make_vm_snapshot(tmp_path / "b", seed=2, scale_bytes=256 * 1024)
    snapferry.backup(url, str(first), remote_options=opts, progress="off")
    before = set(_keys(s3, bucket, "vm/"))
    snapferry.backup(url, str(second), remote_options=opts, progress="off")
    after = set(_keys(s3, bucket, "vm/"))
    dropped = before - after
    assert len(dropped) > 5, (before, after)
    versions = _versions(s3, bucket, "vm/")
    for key in dropped:
        # without the flag: the old version and the delete marker that hides it
        assert versions.get(key, 0) == (2 if versioned and not delete_all else 0), key
    assert all(versions[key] == 1 for key in after - before), versions
    # the second backup is whole: it restores to the second snapshot (but the one file the two
    # generated snapshots share at the same size, which an incremental backup keeps, as vmbackup)
    out = tmp_path / "restored"
    snapferry.restore(url, str(out), remote_options=opts, progress="off")
    same = "metadata/minTimestampForCompositeIndex"
    assert {k: v for k, v in tree_digest(out).items() if k != same} == {
        k: v for k, v in tree_digest(second).items() if k != same}


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
@pytest.mark.parametrize("delete_all", [False, True], ids=["current-only", "all-versions"])
def test_retention_deletes_every_version_of_a_dated_backup(
    delete_all: bool, moto_server: S3Server, vm_server: StartVM, tmp_path: Path
) -> None:
    s3 = moto_server
    bucket = s3.new_bucket()
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url = f"s3://{bucket}/vm-node-0"
    opts = dataclasses.replace(s3.options, delete_all_object_versions=delete_all)
    clock = SimClock(T)
    mgr, feed = _manager(vm_server, tmp_path / "vmdata", url, opts, clock, disable_daily=True,
                         disable_weekly=True, disable_monthly=True, keep_last_hourly=1)
    try:
        assert mgr.run_once().ok
        old = "vm-node-0/hourly/2026-11-27:13/"
        stored = set(_keys(s3, bucket, old))
        assert len(stored) > 5, stored
        feed.ingest_before(T + timedelta(hours=1))
        clock.set(T + timedelta(hours=1))
        result = mgr.run_once()
        assert result.ok and result.deleted == ("hourly/2026-11-27:13",), result
    finally:
        mgr.close()
    assert _keys(s3, bucket, old) == []
    versions = _versions(s3, bucket, old)
    if delete_all:
        assert versions == {}, versions
    else:
        assert set(versions) >= stored and all(versions[k] == 2 for k in stored), versions
    # the kept backups are whole: their current versions are still there
    assert _keys(s3, bucket, "vm-node-0/hourly/2026-11-27:14/")


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
@pytest.mark.parametrize("any_remote", ["gs", "azblob"], indirect=True)
def test_gs_carries_the_type_as_metadata_and_azblob_as_a_blob_index_tag(
    any_remote: RemoteFactory, vm_server: StartVM, tmp_path: Path
) -> None:
    spec = any_remote(prefix="vm-node-0")
    opts = dataclasses.replace(spec.options, backup_type_tag_name=TAG, object_metadata={"team": "db"})
    clock = SimClock(T)
    mgr, feed = _manager(vm_server, tmp_path / "vmdata", spec.url, opts, clock)
    try:
        assert mgr.run_once().ok
        feed.ingest_before(T + timedelta(hours=1))
        clock.set(T + timedelta(hours=1))
        assert mgr.run_once().ok
        names = [name for name, _ in mgr.catalog.remotes.root.list_objects()]
    finally:
        mgr.close()
    seen: set[str] = set()
    for name in names:
        kind = name.split("/")[0] if "/" in name else None  # the manager's own files belong to no backup
        if any_remote.kind == "gs":
            assert spec.raw_metadata(name) == {"team": "db", **({TAG: kind} if kind else {})}, name
        else:
            assert spec.raw_metadata(name) == {"team": "db"}, name
            assert isinstance(spec.server, AzuriteServer)
            tags = spec.server.client().get_blob_client(spec.bucket, spec.key(name)).get_blob_tags()
            assert tags == ({TAG: kind} if kind else {}), name
        if kind:
            seen.add(kind)
    assert seen == TYPES, seen
    assert any(n.startswith("hourly/2026-11-27:14/data/") for n in names), names


@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_a_multipart_upload_carries_the_type_tag_too(server: str, request: pytest.FixtureRequest) -> None:
    s3: S3Server = request.getfixturevalue(server)
    bucket = s3.new_bucket()
    chunk = 5 * 1024 * 1024
    opts = dataclasses.replace(s3.options, backup_type_tag_name=TAG, multipart_chunk_size=chunk)
    remotes = DstRemotes(f"s3://{bucket}/vm", opts)
    try:
        size = chunk + 4096  # above one chunk: a multipart upload
        part = Part("data/big/2026_11/17A3F0C2D1E50099/values.bin", size, 0, size, size)
        remotes.child("weekly/2026-48").upload_part(part, BytesBody(random.Random(1).randbytes(size)))
    finally:
        remotes.close()
    [key] = _keys(s3, bucket, "vm/weekly/2026-48/")
    assert s3.client().head_object(Bucket=bucket, Key=key)["ETag"].endswith('-2"'), "not a multipart upload"
    assert _tags(s3, bucket, key) == {TAG: "weekly"}


def test_a_tag_name_azure_cannot_carry_is_refused(azurite: AzuriteServer) -> None:
    url, opts = azurite.new_remote("vm")
    with azurite.environ(), pytest.raises(UsageError, match="cannot name an Azure blob index tag"):
        DstRemotes(url, dataclasses.replace(opts, backup_type_tag_name="vm@type"))  # S3 takes @, Azure not
    with azurite.environ():
        DstRemotes(url, dataclasses.replace(opts, backup_type_tag_name="VM-Backup.Type")).close()


def test_a_block_list_upload_to_azblob_carries_the_type_tag_too(azurite: AzuriteServer) -> None:
    url, opts = azurite.new_remote("vm")
    chunk = 1024 * 1024
    opts = dataclasses.replace(opts, backup_type_tag_name=TAG, multipart_chunk_size=chunk)
    size = 2 * chunk + 17  # three staged blocks, then the committed list
    part = Part("data/big/2026_11/17A3F0C2D1E50099/values.bin", size, 0, size, size)
    with azurite.environ():
        remotes = DstRemotes(url, opts)
        try:
            remotes.child("monthly/2026-11").upload_part(part, BytesBody(random.Random(2).randbytes(size)))
            [name] = [n for n, _ in remotes.child("monthly/2026-11").list_objects()]
        finally:
            remotes.close()
    container = url.split("/")[2]
    blob = azurite.client().get_blob_client(container, f"vm/monthly/2026-11/{name}")
    assert len(blob.get_block_list()[0]) == 3, "not a block list upload"
    assert blob.get_blob_tags() == {TAG: "monthly"}


def test_copy_on_the_command_line_drops_every_version_of_stale_parts(moto_server: S3Server, tmp_path: Path) -> None:
    s3 = moto_server
    bucket = s3.new_bucket()
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = make_vm_snapshot(tmp_path / "a", seed=3, scale_bytes=256 * 1024)
    new = make_vm_snapshot(tmp_path / "b", seed=4, scale_bytes=256 * 1024)
    snapferry.backup(f"s3://{bucket}/dst", str(old), remote_options=s3.options, progress="off")
    snapferry.backup(f"s3://{bucket}/src", str(new), remote_options=s3.options, progress="off")
    before = set(_keys(s3, bucket, "dst/"))
    p = run(["copy", "--src", f"s3://{bucket}/src", "--dst", f"s3://{bucket}/dst", "--delete-all-object-versions",
             *remote_args(s3)], s3.env)
    assert p.returncode == 0, p.stderr
    dropped = before - set(_keys(s3, bucket, "dst/"))
    assert len(dropped) > 5, dropped
    versions = _versions(s3, bucket, "dst/")
    assert not dropped & set(versions), sorted(dropped & set(versions))


@pytest.mark.parametrize("server", ["seaweedfs", "moto_server"])
def test_a_tag_name_with_punctuation_survives_the_signed_put_and_the_copy(
    server: str, request: pytest.FixtureRequest
) -> None:
    s3: S3Server = request.getfixturevalue(server)
    bucket = s3.new_bucket()
    name = "vm:backup/type=@x"  # every punctuation mark S3 allows in a key, escaped in x-amz-tagging
    remotes = DstRemotes(f"s3://{bucket}/vm", dataclasses.replace(s3.options, backup_type_tag_name=name))
    try:
        part = Part("data/small/2026_11/17A3F0C2D1E50099/index.bin", 4096, 0, 4096, 4096)
        latest = remotes.child("latest")
        latest.upload_part(part, BytesBody(random.Random(3).randbytes(4096)))
        remotes.child("daily/2026-11-27").copy_part(latest, part)
    finally:
        remotes.close()
    for kind in ("latest", "daily"):
        [key] = _keys(s3, bucket, f"vm/{kind}/")
        assert _tags(s3, bucket, key) == {name: kind}, key
