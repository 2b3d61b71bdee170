"""One suite for every remote: fs://, s3:// (SeaweedFS and moto), gs://, azblob://.

Each test runs the real actions against a real server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry.checksums import BLOCK, decode, file_crcs
from snapferry.errors import BadBackupError
from snapferry.names import MANIFEST_FILE
from snapferry.remotes import open_remote
from tests.conftest import tree_digest, write_random
from tests.servers import RemoteFactory

MIB = 1024 * 1024
SMALL = len('{"parts":["17A3F0C2D1E50050"]}') + len("1700000000")


def _backup(spec_url: str, opts: snapferry.RemoteOptions, src: Path, **kw: object) -> snapferry.BackupResult:
    return snapferry.backup(spec_url, str(src), remote_options=opts, max_part_size=MIB, progress="off",
                            **kw)  # type: ignore[arg-type]


def _restore(url: str, opts: snapferry.RemoteOptions, dst: Path, **kw: object) -> snapferry.RestoreResult:
    return snapferry.restore(url, str(dst), remote_options=opts, progress="off", **kw)  # type: ignore[arg-type]


def test_full_and_incremental_backup_and_restore(
    any_remote: RemoteFactory, snapshot_tree: Path, tmp_path: Path
) -> None:
    spec = any_remote()
    full = _backup(spec.url, spec.options, snapshot_tree)
    assert full.uploaded_bytes == full.backup_bytes
    out = tmp_path / "out"
    r = _restore(spec.url, spec.options, out)
    assert tree_digest(out) == tree_digest(snapshot_tree)
    assert r.downloaded_bytes == full.backup_bytes

    # Incremental backup: one file gone, one new.
    (snapshot_tree / "indexdb" / "17A3F0C2D1E50051" / "items.bin").unlink()
    write_random(snapshot_tree / "indexdb" / "17A3F0C2D1E50052" / "items.bin", 3 * MIB // 2, 7)
    inc = _backup(spec.url, spec.options, snapshot_tree)
    assert inc.uploaded_bytes == 3 * MIB // 2 + SMALL
    assert inc.parts_deleted == 2

    # Incremental restore: only the new file and the always-transferred ones.
    r2 = _restore(spec.url, spec.options, out)
    assert r2.downloaded_bytes == 3 * MIB // 2 + SMALL
    assert r2.files_deleted == 1
    assert tree_digest(out) == tree_digest(snapshot_tree)
    assert spec.raw_get("backup_complete.ignore") == b""


@pytest.mark.parametrize("inplace", [False, True])
def test_restore_both_modes_with_ranged_chunks(
    any_remote: RemoteFactory, snapshot_tree: Path, tmp_path: Path, inplace: bool
) -> None:
    from snapferry.restorer.downloader import Tuning

    spec = any_remote()
    _backup(spec.url, spec.options, snapshot_tree)
    out = tmp_path / "out"
    # Ranges smaller than parts: several ranged GETs per part, written at their offsets.
    tuning = Tuning(concurrency=4, chunk_size=300_000, block_size=128 * 1024, max_inflight_bytes=MIB)
    _restore(spec.url, spec.options, out, tuning=tuning, skip_file_preallocation=inplace)
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_backup_with_origin_copies_server_side(any_remote: RemoteFactory, snapshot_tree: Path) -> None:
    old = any_remote(prefix="old")
    new = any_remote(prefix="new", bucket=old.bucket)
    _backup(old.url, old.options, snapshot_tree)
    res = _backup(new.url, new.options, snapshot_tree, origin=old.url)
    assert res.copied_bytes == res.backup_bytes - SMALL
    assert res.uploaded_bytes == SMALL


def test_copy_is_server_side_and_syncs(any_remote: RemoteFactory, snapshot_tree: Path, tmp_path: Path) -> None:
    a = any_remote(prefix="a")
    b = any_remote(prefix="b", bucket=a.bucket)
    _backup(a.url, a.options, snapshot_tree)
    b.raw_put("stale/0000000000000001_0000000000000000_0000000000000001", b"x")
    res = snapferry.copy(a.url, b.url, remote_options=a.options, progress="off")
    assert res.server_side and res.parts_deleted == 1
    out = tmp_path / "out"
    _restore(b.url, b.options, out)
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_more_than_1000_objects_and_odd_names(any_remote: RemoteFactory, tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    for i in range(1050):
        (snap / "many" / f"{i // 100:02d}").mkdir(parents=True, exist_ok=True)
        (snap / "many" / f"{i // 100:02d}" / f"f{i:04d}.bin").write_bytes(i.to_bytes(4, "big"))
    write_random(snap / "with space" / "ünïcødé ✓.bin", 1000, 3)
    spec = any_remote()
    res = _backup(spec.url, spec.options, snap)
    assert res.parts_uploaded == 1051
    assert len(spec.open().list_parts()) == 1051
    out = tmp_path / "out"
    _restore(spec.url, spec.options, out)
    assert tree_digest(out) == tree_digest(snap)


def test_truncated_remote_part_is_refused_then_repaired(
    any_remote: RemoteFactory, snapshot_tree: Path, tmp_path: Path
) -> None:
    spec = any_remote()
    _backup(spec.url, spec.options, snapshot_tree)
    size = 3 * MIB + 17
    name = f"data/small/2026_11/17A3F0C2D1E50050/values.bin/{size:016X}_{MIB:016X}_{MIB:016X}"
    spec.raw_put(name, b"truncated")
    out = tmp_path / "out"
    with pytest.raises(BadBackupError, match="broken"):
        _restore(spec.url, spec.options, out)
    res = _backup(spec.url, spec.options, snapshot_tree)
    assert res.parts_deleted == 1 and res.uploaded_bytes == MIB + SMALL
    assert len(spec.raw_get(name)) == MIB
    _restore(spec.url, spec.options, out)
    assert tree_digest(out) == tree_digest(snapshot_tree)


@pytest.mark.parametrize(
    ("src_kind", "dst_kind"),
    [("fs", "s3-seaweedfs"), ("s3-seaweedfs", "gs"), ("gs", "azblob"), ("azblob", "s3-moto"), ("s3-moto", "fs")],
)
def test_cross_backend_copy_streams(
    request: pytest.FixtureRequest, src_kind: str, dst_kind: str, snapshot_tree: Path, tmp_path: Path
) -> None:
    from tests.servers import _SERVER_FIXTURE, RemoteFactory

    def factory(kind: str) -> RemoteFactory:
        server = None if kind == "fs" else request.getfixturevalue(_SERVER_FIXTURE[kind])
        return RemoteFactory(kind, server, tmp_path)

    src = factory(src_kind)()
    dst = factory(dst_kind)()
    with pytest.MonkeyPatch.context() as mp:
        for f in (src, dst):
            if f.server is not None:
                for k, v in f.server.env.items():
                    mp.setenv(k, v)
        _backup(src.url, src.options, snapshot_tree)
        res = snapferry.copy(src.url, dst.url, remote_options=dst.options, src_remote_options=src.options,
                             progress="off")
        assert not res.server_side and res.copied_bytes == res.backup_bytes
        out = tmp_path / "out"
        _restore(dst.url, dst.options, out)
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_the_manifest_holds_the_crcs_of_the_bytes_on_disk(any_remote: RemoteFactory, tmp_path: Path) -> None:
    # Cloud backends take the CRCs from the chunks they upload (16 MiB multipart chunks here);
    # fs:// re-reads what it copied. Either way they must be those of the source bytes.
    src = tmp_path / "snap"
    write_random(src / "data" / "big.bin", 2 * BLOCK + 12345, 7)
    write_random(src / "data" / "small.bin", 5000, 8)
    (src / "data" / "empty.bin").write_bytes(b"")
    spec = any_remote()
    snapferry.backup(spec.url, str(src), remote_options=spec.options, progress="off")
    remote = open_remote(spec.url, spec.options)
    try:
        manifest = decode(remote.read_file(MANIFEST_FILE))
        parts = remote.list_parts()
    finally:
        remote.close()
    assert manifest is not None and set(manifest) == {p.name for p in parts}
    for p in parts:
        assert manifest[p.name] == file_crcs(str(src / p.path), p.offset, p.size), p.name
