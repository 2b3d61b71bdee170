"""backup_metadata.ignore of an encrypted backup is authenticated by the sealed manifest:
an edit, a deletion or a replacement fails `verify` and `restore` with exit 3 naming it,
`info` and `verify` say the creation time is authenticated, and a manifest sealed before the
digest existed still restores and verifies (as not authenticated)."""

from __future__ import annotations

import hmac
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import snapferry
from snapferry import api
from snapferry.crypto.chunks import MAGIC
from snapferry.crypto.keys import KeyRecord, load_key
from snapferry.crypto.manifest import ManifestSeal
from snapferry.errors import EXIT_BAD_BACKUP, SnapferryError
from tests.crypto.test_cli import cli
from tests.datagen import assert_same_tree
from tests.servers import RemoteFactory, RemoteSpec

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"
METADATA = "backup_metadata.ignore"
MANIFEST = "snapferry_checksums.ignore"
CREATED = "2026-11-24T12:00:00Z"  # the time in snapshot_tree's name


def encrypted_backup(spec: RemoteSpec, src: Path, key: Path) -> None:
    snapferry.backup(spec.url, str(src), remote_options=spec.options, max_part_size=MIB, progress="off",
                     encrypt=True, encryption_key_file=str(key))


def refused(spec: RemoteSpec, key: Path, out: Path, culprit: str) -> None:
    """restore, verify and a copy of the backup each fail with exit 3 naming `culprit`."""
    with pytest.raises(SnapferryError) as restore:
        snapferry.restore(spec.url, str(out), remote_options=spec.options, progress="off",
                          encryption_key_file=str(key))
    assert restore.value.exit_code == EXIT_BAD_BACKUP and culprit in str(restore.value), restore.value
    assert not (out / VALUES).exists()
    with pytest.raises(SnapferryError) as verify:
        snapferry.verify(spec.url, remote_options=spec.options, progress="off", encryption_key_file=str(key))
    assert verify.value.exit_code == EXIT_BAD_BACKUP and culprit in str(verify.value), verify.value


TAMPERS = {
    "edited": lambda meta: meta.replace(CREATED.encode(), b"2026-12-01T00:00:00Z"),
    "reformatted": lambda meta: meta.replace(b'"created_by":"snapferry', b'"created_by": "snapferry'),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_edited_metadata_fails_verify_and_restore(
    remotes: RemoteFactory, snapshot_tree: Path, tmp_path: Path, tamper: str
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    spec = remotes()
    encrypted_backup(spec, snapshot_tree, key)
    # A nothing-changed rerun leaves the manifest's checksums as they were: it is sealed anew
    # with the new metadata's digest (the metadata's completion time changes at every run).
    encrypted_backup(spec, snapshot_tree, key)

    original = spec.raw_get(METADATA)
    changed = TAMPERS[tamper](original)
    assert changed != original and json.loads(changed)  # still valid JSON: only the digest tells
    spec.raw_put(METADATA, changed)
    refused(spec, key, tmp_path / "out", METADATA)
    with pytest.raises(SnapferryError) as copy:
        snapferry.copy(spec.url, remotes().url, remote_options=spec.options, progress="off",
                       encryption_key_file=str(key))
    assert copy.value.exit_code == EXIT_BAD_BACKUP and METADATA in str(copy.value)

    spec.raw_put(METADATA, original)  # put back: it verifies and restores again
    result = snapferry.verify(spec.url, remote_options=spec.options, progress="off", encryption_key_file=str(key))
    assert not result.problems and result.created_at == CREATED and result.metadata_authenticated, result
    info = snapferry.info(spec.url, remote_options=spec.options, encryption_key_file=str(key)).backup
    assert info is not None and info.created_at == CREATED and info.metadata_authenticated
    snapferry.restore(spec.url, str(tmp_path / "ok"), remote_options=spec.options, progress="off",
                      encryption_key_file=str(key))
    (tmp_path / "ok" / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, tmp_path / "ok")


def delete(spec: RemoteSpec, name: str) -> None:
    remote = spec.open()
    try:
        remote.delete_file(name)
    finally:
        remote.close()


def test_deleted_metadata_or_manifest_fails_verify_and_restore(
    remotes: RemoteFactory, snapshot_tree: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    spec = remotes()
    encrypted_backup(spec, snapshot_tree, key)
    delete(spec, METADATA)
    refused(spec, key, tmp_path / "out1", METADATA)

    # Without its manifest nothing could be checked (lost parts, an edited metadata file):
    # an encrypted backup always has one, so its absence is refused too.
    spec = remotes()
    encrypted_backup(spec, snapshot_tree, key)
    spec.raw_put(METADATA, spec.raw_get(METADATA).replace(CREATED.encode(), b"2026-12-01T00:00:00Z"))
    delete(spec, MANIFEST)
    refused(spec, key, tmp_path / "out2", MANIFEST)


def legacy_manifest(spec: RemoteSpec, key: Path) -> None:
    """Seal the manifest as the first encrypted format did: the checksum manifest alone,
    under the same derived key, nonce and AAD (docs/encryption.md)."""
    record = KeyRecord.decode(spec.raw_get("snapferry_encryption.ignore"), spec.url)
    data_key = record.unwrap(load_key(str(key)), spec.url)
    manifest = ManifestSeal(data_key, record.backup_id, spec.url).open(spec.raw_get(MANIFEST)).manifest
    assert manifest.startswith(b"snapferry-checksums 2 ")
    salt = os.urandom(16)
    aead = AESGCM(hmac.digest(data_key, b"manifest\0" + salt, "sha256"))
    spec.raw_put(MANIFEST, MAGIC + salt + aead.encrypt(bytes(12), manifest, b"snapferry-manifest-1" + record.backup_id))


def test_a_manifest_sealed_before_the_digest_still_restores_and_verifies(
    snapshot_tree: Path, tmp_path: Path, remotes: RemoteFactory
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    spec = remotes()
    encrypted_backup(spec, snapshot_tree, key)
    legacy_manifest(spec, key)

    result = snapferry.verify(spec.url, read_data=True, remote_options=spec.options, progress="off",
                              encryption_key_file=str(key))
    assert not result.problems and result.created_at == CREATED and not result.metadata_authenticated, result
    out = tmp_path / "out"
    snapferry.restore(spec.url, str(out), remote_options=spec.options, progress="off", encryption_key_file=str(key))
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)
    # Its metadata is not authenticated: an edit is not caught (what the digest adds).
    spec.raw_put(METADATA, spec.raw_get(METADATA).replace(CREATED.encode(), b"2026-12-01T00:00:00Z"))
    edited = snapferry.verify(spec.url, remote_options=spec.options, progress="off", encryption_key_file=str(key))
    assert edited.created_at == "2026-12-01T00:00:00Z" and not edited.metadata_authenticated
    # The next backup into it seals the manifest with the digest.
    encrypted_backup(spec, snapshot_tree, key)
    again = snapferry.verify(spec.url, remote_options=spec.options, progress="off", encryption_key_file=str(key))
    assert again.created_at == CREATED and again.metadata_authenticated


def test_info_and_verify_show_the_authenticated_time_and_a_rollback_shows_its_older_one(
    snapshot_tree: Path, tmp_path: Path
) -> None:
    key = tmp_path / "k"
    assert cli("keygen", str(key)).returncode == 0
    bk = tmp_path / "bk"

    def backup(src: Path) -> None:
        r = cli("backup", "--src", str(src), "--dst", f"fs://{bk}", "--encrypt", "--encryption-key-file", str(key),
                "--progress", "off")
        assert r.returncode == 0, r.stderr

    def shown() -> tuple[dict[str, object], str, dict[str, object], str]:
        k = ("--encryption-key-file", str(key))
        v = cli("verify", "--src", f"fs://{bk}", "--progress", "off", "--json", *k)
        vt = cli("verify", "--src", f"fs://{bk}", "--progress", "off", *k)
        i = cli("info", "--src", f"fs://{bk}", "--json", *k)
        it = cli("info", "--src", f"fs://{bk}", *k)
        assert v.returncode == vt.returncode == i.returncode == it.returncode == 0, (v.stderr, vt.stderr, i.stderr)
        return json.loads(v.stdout), vt.stderr, json.loads(i.stdout)["backup"], it.stdout

    backup(snapshot_tree)
    old = tmp_path / "old"
    shutil.copytree(bk, old)  # what an attacker with the bucket keeps
    newer = snapshot_tree.parent / "20261125120000-17A3F0C2D1E50060"
    shutil.copytree(snapshot_tree, newer)
    backup(newer)
    v, vt, i, it = shown()
    assert v["created_at"] == i["created_at"] == "2026-11-25T12:00:00Z"
    assert v["metadata_authenticated"] is True and i["metadata_authenticated"] is True
    assert ", made 2026-11-25T12:00:00Z, authenticated)" in vt, vt
    assert "made 2026-11-25T12:00:00Z (authenticated) by snapferry" in it, it

    # The whole older state put back: every check passes (same data key, same backup id),
    # but the authenticated creation time is the older one, which the operator can compare.
    shutil.rmtree(bk)
    shutil.copytree(old, bk)
    v, vt, i, it = shown()
    assert v["created_at"] == i["created_at"] == CREATED and v["metadata_authenticated"] is True
    assert not v["problems"] and f"made {CREATED}, authenticated" in vt
