"""verify, info and the checks restore makes, against real corruption made on each real store.

Every corruption is made with the store's own SDK (or on disk for fs://): bytes
flipped in an object of the same size, an object truncated, deleted, duplicated
under an overlapping name, a junk object, the manifest edited or removed. Each is
found by the verify mode that can see it, named precisely, and the matching restore
fails without a bad file at its final name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import snapferry
from snapferry.checksums import crc32
from snapferry.errors import BadBackupError
from snapferry.findings import ProblemKind, VerifyResult
from snapferry.names import MANIFEST_FILE
from tests.conftest import tree_digest
from tests.servers import RemoteFactory, RemoteSpec

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"
FILE_SIZE = 3 * MIB + 17
P1 = f"{VALUES}/{FILE_SIZE:016X}_{MIB:016X}_{MIB:016X}"  # the second part of values.bin
INDEX = "data/small/2026_11/17A3F0C2D1E50050/index.bin/0000000000001000_0000000000000000_0000000000001000"
# Which test servers keep a checksum of an object that verify compares with the manifest:
# GCS a CRC32C of every object; SeaweedFS the x-amz-checksum-crc32 snapferry sends; moto
# only for objects uploaded with a checksum algorithm (boto3's own puts, or snapferry's
# with --s3-checksum-algorithm); Azurite and fs:// none.
KEEPS_CHECKSUM = {"fs": False, "s3-seaweedfs": True, "s3-moto": True, "gs": True, "azblob": False}
CLEAN_PROVIDER_CHECKED = {"fs": 0, "s3-seaweedfs": 11, "s3-moto": 1, "gs": 11, "azblob": 0}  # moto: the empty part


def raw_delete(spec: RemoteSpec, name: str) -> None:
    """Delete an object behind snapferry's back, with the store's own SDK."""
    if spec.server is None:
        Path(spec.prefix, name).unlink()
    elif spec.kind.startswith("s3"):
        spec.server.client().delete_object(Bucket=spec.bucket, Key=spec.key(name))
    elif spec.kind == "gs":
        spec.server.client().bucket(spec.bucket).blob(spec.key(name)).delete()
    else:
        spec.server.client().get_blob_client(spec.bucket, spec.key(name)).delete_blob()


def found(r: VerifyResult) -> set[tuple[ProblemKind, str]]:
    return {(p.kind, p.part) for p in r.problems}


def _verify(spec: RemoteSpec, **kw: object) -> VerifyResult:
    return snapferry.verify(spec.url, remote_options=spec.options, progress="off", concurrency=4,
                            **kw)  # type: ignore[arg-type]


def _backed_up(any_remote: RemoteFactory, snapshot_tree: Path) -> RemoteSpec:
    spec = any_remote()
    snapferry.backup(spec.url, str(snapshot_tree), remote_options=spec.options, max_part_size=MIB, progress="off")
    return spec


def test_a_clean_snapferry_backup_verifies_clean_and_info_describes_it(
    any_remote: RemoteFactory, snapshot_tree: Path
) -> None:
    spec = _backed_up(any_remote, snapshot_tree)
    r = _verify(spec, read_data=True)
    assert r.problems == []
    assert (r.made_by, r.complete, r.manifest_version, r.files, r.parts) == ("snapferry", True, 2, 7, 11)
    assert r.parts_with_checksums == 11 and r.parts_read == 11 and r.bytes_read == r.backup_bytes
    assert r.parts_provider_checked == 0  # every part read: its bytes checked, no metadata asked
    # Every part has a checksum the store keeps where the store keeps one.
    p = _verify(spec)
    assert p.problems == [] and p.parts_read == 0
    assert p.parts_provider_checked == CLEAN_PROVIDER_CHECKED[any_remote.kind]

    info = snapferry.info(spec.url, remote_options=spec.options)
    b = info.backup
    assert b is not None and info.backups == []
    assert (b.files, b.parts, b.backup_bytes, b.complete, b.checksummed) == (7, 11, r.backup_bytes, True, True)
    assert b.created_by.startswith("snapferry ") and b.created_at is not None


@pytest.mark.parametrize(
    "corruption", ["flip", "truncate", "delete", "overlap", "junk", "manifest-edit", "manifest-gone"]
)
def test_corruption_is_found_by_the_mode_that_can_see_it_and_restore_refuses_it(
    any_remote: RemoteFactory, snapshot_tree: Path, tmp_path: Path, corruption: str
) -> None:
    spec = _backed_up(any_remote, snapshot_tree)
    keeps = KEEPS_CHECKSUM[any_remote.kind]
    structure: set[tuple[ProblemKind, str]] = set()
    provider: set[tuple[ProblemKind, str]] = set()  # found by provider checksums, beyond structure
    data: set[tuple[ProblemKind, str]] = set()  # found by --read-data, beyond those
    restore_error: str | None = P1
    if corruption == "flip":
        body = bytearray(spec.raw_get(P1))
        body[4321] ^= 0x5A
        spec.raw_put(P1, bytes(body))
        provider = {(ProblemKind.CHECKSUM, P1)} if keeps else set()
        data = {(ProblemKind.CONTENT, P1)}
    elif corruption == "truncate":
        spec.raw_put(P1, spec.raw_get(P1)[:1000])
        structure = {(ProblemKind.SIZE, P1)}
    elif corruption == "delete":
        raw_delete(spec, INDEX)  # a whole single-part file: no gap shows it, only the manifest
        structure = {(ProblemKind.MISSING, INDEX)}
        restore_error = INDEX
    elif corruption == "overlap":
        dup = f"{VALUES}/{FILE_SIZE:016X}_{MIB // 2:016X}_{MIB:016X}"
        spec.raw_put(dup, spec.raw_get(P1))
        # The duplicate overlaps the first part, and the second part overlaps the duplicate.
        structure = {(ProblemKind.OVERLAP, dup), (ProblemKind.UNLISTED, dup), (ProblemKind.OVERLAP, P1)}
        restore_error = "overlaps"
    elif corruption == "junk":
        spec.raw_put("data/small/notes.txt", b"left here by hand")
        structure = {(ProblemKind.JUNK, "data/small/notes.txt")}
        restore_error = None  # restore skips it, as vmrestore does
    elif corruption == "manifest-edit":
        text = spec.raw_get(MANIFEST_FILE).decode()
        line = next(ln for ln in text.split("\n") if ln.startswith(P1 + "\t"))
        name, crcs, c32c = line.split("\t")
        bad = f"{int(crcs, 16) ^ 1:08x}"
        spec.raw_put(MANIFEST_FILE, text.replace(line, f"{name}\t{bad}\t{c32c}").encode())
        # The stores keeping a CRC32C compare that, which the edit left alone; S3's CRC32 is the block's.
        provider = {(ProblemKind.CHECKSUM, P1)} if any_remote.kind == "s3-seaweedfs" else set()
        data = {(ProblemKind.CONTENT, P1)}
    else:
        raw_delete(spec, MANIFEST_FILE)
        structure = {(ProblemKind.MANIFEST, MANIFEST_FILE)}
        restore_error = None  # restored unverified, with a warning; --verify refuses it (below)

    s = _verify(spec, structure_only=True)
    assert found(s) == structure and s.parts_provider_checked == 0
    p = _verify(spec)
    assert found(p) == structure | provider
    d = _verify(spec, read_data=True)
    # A part read is checked against the manifest, not also against the store's checksum.
    assert found(d) == structure | data
    for problem in d.problems:
        assert problem.expected and problem.found  # every problem says what was expected and found
    if provider:
        # ... which the parts a subset leaves unread still get
        other = 2 - crc32(P1.encode()) % 2  # the slice of two without P1
        u = _verify(spec, read_data_subset=f"{other}/2")
        assert found(u) == structure | provider and 0 < u.parts_provider_checked <= 11 - u.parts_read

    out = tmp_path / "out"
    if restore_error is None:
        r = snapferry.restore(spec.url, str(out), remote_options=spec.options, progress="off")
        assert tree_digest(out) == tree_digest(snapshot_tree)
        if corruption == "manifest-gone":
            assert r.parts_verified == 0 and r.parts_unverified == 11
            with pytest.raises(BadBackupError, match="cannot verify") as e:
                snapferry.restore(spec.url, str(tmp_path / "v"), remote_options=spec.options, progress="off",
                                  verify=True)
            assert MANIFEST_FILE in str(e.value)
        return
    for verify in (False, True):
        with pytest.raises(BadBackupError) as e:
            snapferry.restore(spec.url, str(out), remote_options=spec.options, progress="off", verify=verify)
        assert restore_error in str(e.value)
        assert not (out / VALUES).exists()  # nothing bad renamed into place


def test_s3_objects_uploaded_with_a_checksum_algorithm_are_checked_on_moto(
    moto_server: object, snapshot_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import RemoteFactory as Factory
    from tests.servers import S3Server

    assert isinstance(moto_server, S3Server)
    for k, v in moto_server.env.items():
        monkeypatch.setenv(k, v)
    spec = Factory("s3-moto", moto_server, tmp_path)(s3_checksum_algorithm="CRC32")
    snapferry.backup(spec.url, str(snapshot_tree), remote_options=spec.options, max_part_size=MIB, progress="off")
    assert _verify(spec).parts_provider_checked == 11
    body = bytearray(spec.raw_get(P1))
    body[-1] ^= 1
    spec.server.client().put_object(Bucket=spec.bucket, Key=spec.key(P1), Body=bytes(body),  # type: ignore[union-attr]
                                    ChecksumAlgorithm="CRC32")
    r = _verify(spec)
    assert found(r) == {(ProblemKind.CHECKSUM, P1)}
    assert r.problems[0].found.startswith("crc32 ")


def test_a_clean_vmbackup_backup_verifies_clean(tmp_path: Path, vm_version: str) -> None:
    """A backup by vmbackup 1.79.5 or 1.145.0 (`vm_version`)."""
    from tests.datagen import make_vm_snapshot
    from tests.vm import require_binary, run_vmbackup

    require_binary("vmbackup", vm_version)
    storage, bk = tmp_path / "vm", tmp_path / "bk"
    snap = make_vm_snapshot(storage, seed=5, scale_bytes=4 * MIB, big_file_size=2 * MIB + 3)
    run_vmbackup(storage, snap.name, bk, version=vm_version)
    r = snapferry.verify(f"fs://{bk}", read_data=True, progress="off")
    assert r.problems == [] and r.made_by == "vmbackup" and r.manifest_version == 0
    assert r.parts > 0 and r.parts_read == r.parts and r.parts_with_checksums == 0
    info = snapferry.info(f"fs://{bk}")
    assert info.backup is not None and info.backup.created_by == "vmbackup"
    assert info.backup.complete and not info.backup.checksummed
    # Without a manifest a vmbackup backup restores, unverified, also with --verify.
    res = snapferry.restore(f"fs://{bk}", str(tmp_path / "out"), progress="off", verify=True)
    assert res.parts_verified == 0


def test_read_data_subset_reads_a_deterministic_slice(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    slices = [snapferry.verify(f"fs://{bk}", read_data_subset=f"{i}/3", progress="off") for i in (1, 2, 3)]
    assert sum(s.parts_read for s in slices) == 11
    assert sum(s.bytes_read for s in slices) == slices[0].backup_bytes
    again = snapferry.verify(f"fs://{bk}", read_data_subset="2/3", progress="off")
    assert again.parts_read == slices[1].parts_read and again.subset == "2/3"
    # A percentage is a slice of 100/P that moves daily: 50% is one of two halves.
    half = snapferry.verify(f"fs://{bk}", read_data_subset="50%", progress="off")
    assert half.subset in ("1/2", "2/2")


def test_info_lists_the_backups_of_a_manager_layout(snapshot_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "mgr"
    snapferry.backup(f"fs://{root}/latest", str(snapshot_tree), max_part_size=MIB, progress="off")
    for name in ("daily/2026-11-25", "weekly/2026-48"):
        snapferry.copy(f"fs://{root}/latest", f"fs://{root}/{name}", progress="off")
    (root / "daily" / "2026-11-26").mkdir()  # a backup in progress: parts, no marker yet
    (root / "daily" / "2026-11-26" / "x").mkdir()
    (root / "daily" / "2026-11-26" / "x" / "0000000000000001_0000000000000000_0000000000000001").write_bytes(b"z")
    info = snapferry.info(f"fs://{root}")
    assert info.backup is None
    assert [b.name for b in info.backups] == ["latest", "daily/2026-11-25", "daily/2026-11-26", "weekly/2026-48"]
    assert [b.complete for b in info.backups] == [True, True, False, True]
    assert info.backups[0].files == 7 and info.backups[0].checksummed
    json.dumps(info.to_dict())  # the --json output is plain JSON


def test_multipart_parts_are_compared_with_the_store_checksum(any_remote: RemoteFactory, tmp_path: Path) -> None:
    """A 40 MiB part: three 16 MiB chunks on S3 (with a checksum algorithm SeaweedFS keeps the
    composite `...-3`; moto keeps it without its `-3`, which verify cannot tell from a whole-object
    CRC32, so it is not compared), one CRC32C on GCS."""
    from tests.conftest import write_random

    src = tmp_path / "snap"
    write_random(src / "data" / "big.bin", 40 * MIB + 5, 9)
    spec = any_remote(s3_checksum_algorithm="CRC32") if any_remote.kind.startswith("s3") else any_remote()
    snapferry.backup(spec.url, str(src), remote_options=spec.options, progress="off")
    r = _verify(spec, read_data=True)
    assert r.problems == [] and r.parts == 1
    compared = any_remote.kind in ("gs", "s3-seaweedfs")
    assert _verify(spec).parts_provider_checked == (1 if compared else 0)
    name = f"data/big.bin/{40 * MIB + 5:016X}_{0:016X}_{40 * MIB + 5:016X}"
    body = bytearray(spec.raw_get(name))
    body[17 * MIB] ^= 1  # in the second block
    spec.raw_put(name, bytes(body))
    # Re-put in one request, S3 keeps a whole-object CRC32 of a 3-block part, which the block CRCs
    # do not give without combining them: only GCS's CRC32C sees the flip without reading the data.
    assert found(_verify(spec)) == ({(ProblemKind.CHECKSUM, name)} if any_remote.kind == "gs" else set())
    r = _verify(spec, read_data=True)
    assert found(r) == {(ProblemKind.CONTENT, name)}
    assert any(p.expected.startswith("block 1 ") for p in r.problems if p.kind is ProblemKind.CONTENT)
