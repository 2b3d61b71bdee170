"""A run without a key never replaces an encrypted backup with plaintext (a silent security
downgrade): `backup`, `copy`, the drop-in vmbackup and the manager refuse it before writing
anything, on fs:// and SeaweedFS, unless told to with --replace-encrypted."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry import api
from snapferry.errors import EXIT_USAGE, SnapferryError
from tests.crypto.test_cli import cli
from tests.datagen import assert_same_tree
from tests.servers import RemoteFactory, RemoteSpec

MIB = 1024 * 1024


def stored(spec: RemoteSpec) -> dict[str, bytes]:
    """Every object under the backup's root, byte for byte, as the store holds it."""
    remote = spec.open()
    try:
        return {name: spec.raw_get(name) for name, _ in remote.list_objects()}
    finally:
        remote.close()


def encrypted_backup(spec: RemoteSpec, src: Path, key: Path) -> None:
    snapferry.backup(spec.url, str(src), remote_options=spec.options, max_part_size=MIB, progress="off",
                     encrypt=True, encryption_key_file=str(key))


def plain_backup(spec: RemoteSpec, src: Path, **kw: bool) -> None:
    snapferry.backup(spec.url, str(src), remote_options=spec.options, max_part_size=MIB, progress="off", **kw)


def test_a_plain_backup_or_copy_never_replaces_an_encrypted_one(
    remotes: RemoteFactory, snapshot_tree: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    enc, plain = remotes(), remotes()
    encrypted_backup(enc, snapshot_tree, key)
    plain_backup(plain, snapshot_tree)
    before = stored(enc)
    assert "snapferry_encryption.ignore" in before

    with pytest.raises(SnapferryError) as refused:
        plain_backup(enc, snapshot_tree)
    e = refused.value
    assert e.exit_code == EXIT_USAGE and str(e).startswith(f"{enc.url} holds an encrypted backup"), e
    assert "--encrypt --encryption-key-file FILE" in str(e) and "--replace-encrypted" in str(e)
    assert stored(enc) == before  # not a byte changed: no lease, no deleted marker, no part

    with pytest.raises(SnapferryError) as copy_refused:
        snapferry.copy(plain.url, enc.url, remote_options=enc.options, progress="off")
    e = copy_refused.value
    assert e.exit_code == EXIT_USAGE and str(e).startswith(f"{enc.url} holds an encrypted backup"), e
    assert plain.url in str(e) and "--replace-encrypted" in str(e)
    assert stored(enc) == before

    # A copy of an encrypted backup without its key is told about the key, not about --dst.
    with pytest.raises(SnapferryError) as source_refused:
        snapferry.copy(enc.url, remotes().url, remote_options=enc.options, progress="off")
    assert source_refused.value.exit_code == EXIT_USAGE and "is an encrypted backup" in str(source_refused.value)

    # Asked for: the plain backup replaces it, and restores without a key.
    plain_backup(enc, snapshot_tree, replace_encrypted=True)
    after = stored(enc)
    assert "snapferry_encryption.ignore" not in after and "backup_complete.ignore" in after
    out = tmp_path / "out"
    snapferry.restore(enc.url, str(out), remote_options=enc.options, progress="off")
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)

    # The copy's --replace-encrypted, over another encrypted backup.
    enc2 = remotes()
    encrypted_backup(enc2, snapshot_tree, key)
    snapferry.copy(plain.url, enc2.url, remote_options=enc2.options, progress="off", replace_encrypted=True)
    assert "snapferry_encryption.ignore" not in stored(enc2)


def test_the_cli_and_the_dropin_refuse_with_one_sentence(snapshot_tree: Path, tmp_path: Path) -> None:
    from tests.dropin.helpers import run_script

    key = tmp_path / "k"
    assert cli("keygen", str(key)).returncode == 0
    bk = tmp_path / "bk"
    r = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--encrypt", "--encryption-key-file",
            str(key), "--progress", "off")
    assert r.returncode == 0, r.stderr
    before = {p: p.read_bytes() for p in bk.rglob("*") if p.is_file()}
    plain = f"fs://{tmp_path / 'plain'}"
    made = cli("backup", "--src", str(snapshot_tree), "--dst", plain, "--progress", "off")
    assert made.returncode == 0, made.stderr
    for args in (("backup", "--src", str(snapshot_tree)), ("copy", "--src", plain)):
        p = cli(*args, "--dst", f"fs://{bk}", "--progress", "off", "--json")
        assert p.returncode == 2, p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
        assert f"fs://{bk} holds an encrypted backup" in p.stderr and "--replace-encrypted" in p.stderr
    data = snapshot_tree.parent.parent
    d = run_script("vmbackup", [f"-storageDataPath={data}", f"-snapshotName={snapshot_tree.name}", f"-dst=fs://{bk}",
                                "-httpListenAddr=127.0.0.1:0"], check=False)
    assert d.returncode == 2 and "holds an encrypted backup" in d.stderr, d.stderr
    assert "-snapferry.replaceEncrypted" in d.stderr and "-snapferry.encryptionKeyFile=FILE" in d.stderr
    assert {p: p.read_bytes() for p in bk.rglob("*") if p.is_file()} == before
    run_script("vmbackup", [f"-storageDataPath={data}", f"-snapshotName={snapshot_tree.name}", f"-dst=fs://{bk}",
                            "-snapferry.replaceEncrypted", "-httpListenAddr=127.0.0.1:0"])
    assert (bk / "backup_complete.ignore").exists() and not (bk / "snapferry_encryption.ignore").exists()


def test_an_encrypted_copy_never_replaces_a_backup_made_with_another_key(
    remotes: RemoteFactory, snapshot_tree: Path, tmp_path: Path
) -> None:
    """As a backup does (its key must open what is there): a copy, or a backup from an --origin,
    with key A into a place holding a backup under key B is exit 2 before any write, unless
    --replace-encrypted; the user may not even hold B."""
    key_a, key_b = tmp_path / "a.key", tmp_path / "b.key"
    api.keygen(str(key_a))
    api.keygen(str(key_b))
    mine, theirs = remotes(), remotes()
    encrypted_backup(mine, snapshot_tree, key_a)
    encrypted_backup(theirs, snapshot_tree, key_b)
    before = stored(theirs)

    with pytest.raises(SnapferryError) as refused:
        snapferry.copy(mine.url, theirs.url, remote_options=theirs.options, progress="off",
                       encryption_key_file=str(key_a))
    e = refused.value
    assert e.exit_code == EXIT_USAGE, e
    assert str(e).startswith(f"{theirs.url} holds an encrypted backup made with another key"), e
    assert "--replace-encrypted" in str(e) and str(key_a) in str(e)
    assert stored(theirs) == before

    with pytest.raises(SnapferryError) as from_origin:
        snapferry.backup(theirs.url, str(snapshot_tree), origin=mine.url, remote_options=theirs.options,
                         max_part_size=MIB, progress="off", encrypt=True, encryption_key_file=str(key_a))
    assert from_origin.value.exit_code == EXIT_USAGE and "another key" in str(from_origin.value)
    assert stored(theirs) == before

    # Asked for: the copy replaces it, and key A restores it.
    snapferry.copy(mine.url, theirs.url, remote_options=theirs.options, progress="off",
                   encryption_key_file=str(key_a), replace_encrypted=True)
    out = tmp_path / "out"
    snapferry.restore(theirs.url, str(out), remote_options=theirs.options, progress="off",
                      encryption_key_file=str(key_a))
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)

    # The same key on both sides is the user's own backup: replaced as any copy replaces.
    again = remotes()
    encrypted_backup(again, snapshot_tree, key_a)
    snapferry.copy(mine.url, again.url, remote_options=again.options, progress="off",
                   encryption_key_file=str(key_a))
