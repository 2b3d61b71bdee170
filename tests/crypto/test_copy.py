"""Copies and incremental backups of encrypted backups on SeaweedFS (S3)."""

from __future__ import annotations

from pathlib import Path

import snapferry
from snapferry import api
from tests.datagen import assert_same_tree
from tests.servers import S3Server

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


def test_encrypted_copy_stays_server_side_and_incremental_skips(
    seaweedfs: S3Server, snapshot_tree: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    k = str(key)
    bucket = seaweedfs.new_bucket()
    a, opts = seaweedfs.new_remote("a", bucket)
    b, _ = seaweedfs.new_remote("b", bucket)
    first = snapferry.backup(a, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off",
                             encrypt=True, encryption_key_file=k)
    assert first.parts_uploaded == 11
    again = snapferry.backup(a, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off",
                             encrypt=True, encryption_key_file=k)
    assert again.parts_uploaded == 2  # parts.json and appliedRetention.txt, always sent; the rest skipped

    c = snapferry.copy(a, b, remote_options=opts, progress="off", encryption_key_file=k)
    assert c.server_side and c.parts_copied == 11
    # The same sealed objects and the same record: nothing depends on where the backup lives.
    s3 = seaweedfs.client()
    for name in ("snapferry_encryption.ignore", f"{VALUES}/{3 * MIB + 17:016X}_{MIB:016X}_{MIB:016X}"):
        assert s3.get_object(Bucket=bucket, Key=f"a/{name}")["Body"].read() == \
            s3.get_object(Bucket=bucket, Key=f"b/{name}")["Body"].read()
    # The copy's manifest is sealed anew and still vouches for the metadata copied with it.
    for url in (a, b):
        v = snapferry.verify(url, remote_options=opts, progress="off", encryption_key_file=k)
        assert not v.problems and v.metadata_authenticated and v.created_at == "2026-11-24T12:00:00Z", v
    out = tmp_path / "out"
    snapferry.restore(b, str(out), remote_options=opts, progress="off", encryption_key_file=k)
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)

    # A backup with --origin copies the origin's sealed parts server-side into a new place.
    d, _ = seaweedfs.new_remote("d", bucket)
    o = snapferry.backup(d, str(snapshot_tree), origin=a, remote_options=opts, max_part_size=MIB, progress="off",
                         encrypt=True, encryption_key_file=k)
    assert o.parts_copied == 9 and o.parts_uploaded == 2
    out2 = tmp_path / "out2"
    snapferry.restore(d, str(out2), remote_options=opts, progress="off", encryption_key_file=k)
    (out2 / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out2)

    # Across backends the bytes are decrypted and sealed again, under the same record.
    fs_dst = tmp_path / "fscopy"
    x = snapferry.copy(a, f"fs://{fs_dst}", src_remote_options=opts, progress="off", encryption_key_file=k)
    assert not x.server_side and x.parts_copied == 11
    out3 = tmp_path / "out3"
    snapferry.restore(f"fs://{fs_dst}", str(out3), progress="off", encryption_key_file=k)
    (out3 / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out3)
