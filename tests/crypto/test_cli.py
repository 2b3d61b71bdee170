"""Encryption on the command line over fs://: keys, the round trip, the refusals (exit 2)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from snapferry.crypto.chunks import CHUNK, cipher_len
from tests.datagen import assert_same_tree

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snapferry", *args], capture_output=True, text=True,
                          check=False, env=env)


def keygen(path: Path) -> Path:
    r = cli("keygen", str(path))
    assert r.returncode == 0, r.stderr
    return path


def backup(src: Path, bk: Path, key: Path, *extra: str) -> dict[str, object]:
    r = cli("backup", "--src", str(src), "--dst", f"fs://{bk}", "--encrypt", "--encryption-key-file", str(key),
            "--max-part-size", str(MIB), "--progress", "off", "--json", *extra)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


def test_keygen_writes_a_private_key_and_never_overwrites_one(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = cli("keygen", str(key))
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert key.read_bytes() == before
    assert keygen(tmp_path / "k2").read_bytes() != before


def test_encrypted_round_trip_hides_the_bytes_and_names_of_the_manifest(snapshot_tree: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    bk = tmp_path / "bk"
    backup(snapshot_tree, bk, key)
    names = sorted(p.name for p in bk.iterdir())
    # No vmbackup marker: vmrestore finds no complete backup here.
    assert names == ["backup_metadata.ignore", "data", "indexdb", "snapferry_checksums.ignore",
                     "snapferry_encrypted_complete.ignore", "snapferry_encryption.ignore"]
    src_values = (snapshot_tree / VALUES).read_bytes()
    for obj in (bk / VALUES).iterdir():
        size = int(obj.name.split("_")[2], 16)
        assert obj.stat().st_size == cipher_len(size)  # the size in the name is the plaintext's
        data = obj.read_bytes()
        assert src_values[:64] not in data and src_values[MIB : MIB + 64] not in data
    manifest = (bk / "snapferry_checksums.ignore").read_bytes()
    assert b"values.bin" not in manifest and b"snapferry-checksums" not in manifest
    record = json.loads((bk / "snapferry_encryption.ignore").read_text())
    assert record["key_fingerprint"].startswith("sf1:") and record["chunk_size"] == CHUNK
    assert key.read_text().split()[1] not in (bk / "snapferry_encryption.ignore").read_text()

    out = tmp_path / "out"
    r = cli("restore", "--src", f"fs://{bk}", "--dst", str(out), "--encryption-key-file", str(key),
            "--progress", "off", "--json")
    assert r.returncode == 0, r.stderr
    # as unencrypted: all but the empty and always-sent parts, checked against the decrypted manifest
    assert json.loads(r.stdout)["parts_verified"] == 9
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)
    # The key may also come from the environment variable naming the file.
    env = {**os.environ, "SNAPFERRY_ENCRYPTION_KEY_FILE": str(key)}
    v = cli("verify", "--src", f"fs://{bk}", "--read-data", "--progress", "off", env=env)
    assert v.returncode == 0, v.stderr
    assert v.stderr.strip().endswith("clean")
    i = cli("info", "--src", f"fs://{bk}", "--json", env=env)
    assert i.returncode == 0, i.stderr
    facts = json.loads(i.stdout)["backup"]
    assert facts["complete"] and facts["checksummed"] and facts["files"] == 7


def test_missing_or_wrong_key_is_exit_2_before_anything_is_written(snapshot_tree: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    other = keygen(tmp_path / "other")
    bk = tmp_path / "bk"
    backup(snapshot_tree, bk, key)
    before = sorted(str(p) for p in bk.rglob("*"))
    out = tmp_path / "out"
    for args, says in (
        ((), "is an encrypted backup; give its key with --encryption-key-file"),
        (("--encryption-key-file", str(other)), "was encrypted with the key sf1:"),
        (("--encryption-key-file", str(tmp_path / "nokey")), "cannot be read"),
        (("--encryption-key-file", str(snapshot_tree / VALUES)), "is not a snapferry key file"),
    ):
        r = cli("restore", "--src", f"fs://{bk}", "--dst", str(out), "--progress", "off", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert says in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()
        v = cli("verify", "--src", f"fs://{bk}", "--read-data", "--progress", "off", *args)
        assert v.returncode == 2 and says in v.stderr, (args, v.stderr)
        c = cli("copy", "--src", f"fs://{bk}", "--dst", f"fs://{tmp_path / 'copy'}", "--progress", "off", *args)
        assert c.returncode == 2 and says in c.stderr, (args, c.stderr)
        assert not (tmp_path / "copy").exists()
    # A backup into it with another key would throw it away: refused before any write.
    b = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--encrypt",
            "--encryption-key-file", str(other), "--progress", "off")
    assert b.returncode == 2 and "was encrypted with the key" in b.stderr, b.stderr
    assert sorted(str(p) for p in bk.rglob("*")) == before
    # The flags go together; the key is never taken on the command line.
    n = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'b2'}", "--encrypt", "--progress", "off")
    assert n.returncode == 2 and "--encrypt needs --encryption-key-file" in n.stderr
    k = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'b2'}", "--encryption-key-file",
            str(key), "--progress", "off")
    assert k.returncode == 2 and "without --encrypt" in k.stderr
    assert not (tmp_path / "b2").exists()
    help_text = cli("backup", "--help").stdout
    assert "--encryption-key-file" in help_text and "--encryption-key " not in help_text


def test_incremental_backup_skips_unchanged_parts_and_rekey_rewrites_only_the_record(
    snapshot_tree: Path, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "k")
    bk = tmp_path / "bk"
    first = backup(snapshot_tree, bk, key)
    assert first["parts_uploaded"] == 11
    objects = {p: p.read_bytes() for p in bk.rglob("*") if p.is_file() and p.suffix != ".ignore"}
    second = backup(snapshot_tree, bk, key)
    # parts.json and appliedRetention.txt change in place in VictoriaMetrics: always sent, like vmbackup does
    assert second["parts_uploaded"] == 2 and second["uploaded_bytes"] < 100
    values = {p: d for p, d in objects.items() if VALUES in str(p)}
    assert all(p.read_bytes() == d for p, d in values.items())

    new = keygen(tmp_path / "new")
    r = cli("rekey", "--src", f"fs://{bk}", "--encryption-key-file", str(key), "--new-encryption-key-file", str(new))
    assert r.returncode == 0, r.stderr
    assert all(p.read_bytes() == d for p, d in values.items())  # no part rewritten
    old = cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "o1"), "--encryption-key-file", str(key),
              "--progress", "off")
    assert old.returncode == 2 and "was encrypted with the key" in old.stderr
    ok = cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "o2"), "--encryption-key-file", str(new),
             "--progress", "off")
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "o2" / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, tmp_path / "o2")


def test_plain_and_encrypted_backups_replace_each_other(snapshot_tree: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    bk = tmp_path / "bk"
    r = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--progress", "off")
    assert r.returncode == 0, r.stderr
    enc = backup(snapshot_tree, bk, key)
    assert enc["parts_uploaded"] == 11 and enc["parts_deleted"] == 7  # no plaintext part (1 GiB parts) kept
    assert not (bk / "backup_complete.ignore").exists()
    # Without a key the encrypted backup is replaced only when asked to (test_downgrade.py).
    plain = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}", "--progress", "off", "--json",
                "--replace-encrypted")
    assert plain.returncode == 0 and json.loads(plain.stdout)["parts_uploaded"] == 7
    assert not (bk / "snapferry_encrypted_complete.ignore").exists()
    out = cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "out"), "--progress", "off")
    assert out.returncode == 0, out.stderr
    (tmp_path / "out" / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, tmp_path / "out")


def test_dropin_scripts_take_the_key_with_a_snapferry_only_flag(snapshot_tree: Path, tmp_path: Path) -> None:
    from tests.dropin.helpers import run_script

    key = keygen(tmp_path / "k")
    data = snapshot_tree.parent.parent
    bk = tmp_path / "bk"
    run_script("vmbackup", [f"-storageDataPath={data}", f"-snapshotName={snapshot_tree.name}", f"-dst=fs://{bk}",
                            f"-snapferry.encryptionKeyFile={key}", "-httpListenAddr=127.0.0.1:0"])
    assert (bk / "snapferry_encrypted_complete.ignore").exists() and not (bk / "backup_complete.ignore").exists()
    copy = tmp_path / "copy"
    run_script("vmbackup", [f"-origin=fs://{bk}", f"-dst=fs://{copy}", f"-snapferry.encryptionKeyFile={key}",
                            "-httpListenAddr=127.0.0.1:0"])
    out = tmp_path / "out"
    refused = run_script("vmrestore", [f"-src=fs://{copy}", f"-storageDataPath={out}", "-httpListenAddr=127.0.0.1:0"],
                         check=False)
    assert refused.returncode == 2 and "is an encrypted backup" in refused.stderr
    run_script("vmrestore", [f"-src=fs://{copy}", f"-storageDataPath={out}", f"-snapferry.encryptionKeyFile={key}",
                             "-httpListenAddr=127.0.0.1:0"])
    (out / "flock.lock").unlink()
    assert_same_tree(snapshot_tree, out)


def test_no_backup_goes_inside_an_encrypted_backup(snapshot_tree: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    bk = tmp_path / "bk"
    backup(snapshot_tree, bk, key)
    for args in ((), ("--encrypt", "--encryption-key-file", str(key))):
        r = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{bk}/inner", "--progress", "off", *args)
        assert r.returncode == 2 and f"lies inside the backup fs://{bk}" in r.stderr, r.stderr
    assert not (bk / "inner").exists()


def test_dropin_manager_translation_passes_the_key_where_it_is_taken() -> None:
    from snapferry.cli.dropin_cmd import accepted
    from snapferry.dropin.run import flag_set
    from snapferry.dropin.tables import Tool
    from snapferry.dropin.translate import translate

    def tr(*argv: str) -> list[str]:
        parsed = flag_set(Tool.VMBACKUPMANAGER).parse(list(argv), {}, interspersed=True)
        return translate(Tool.VMBACKUPMANAGER, parsed, accepted).argv

    common = ["-dst=fs:///b", "-storageDataPath=/d", "-snapferry.encryptionKeyFile=/k"]
    service = " ".join(tr(*common, "-snapshot.createURL=http://h/snapshot/create"))
    assert "--encrypt --encryption-key-file /k" in service
    init = tr("restore", *common)
    assert "--encryption-key-file" in init and "--encrypt" not in init
    assert "/k" not in " ".join(tr("backup", "list", *common))


def test_the_key_never_shows_in_reprs(tmp_path: Path) -> None:
    from snapferry.crypto.keys import load_key

    key = keygen(tmp_path / "k")
    secret = key.read_text().split()[1]
    loaded = load_key(str(key))
    assert secret not in repr(loaded) and loaded.fingerprint in repr(loaded)


def test_an_encrypted_backup_refuses_a_plain_origin(snapshot_tree: Path, tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    plain = tmp_path / "plain"
    assert cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{plain}", "--progress", "off").returncode == 0
    r = cli("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'enc'}", "--origin", f"fs://{plain}",
            "--encrypt", "--encryption-key-file", str(key), "--progress", "off")
    assert r.returncode == 2 and r.stderr.startswith("snapferry: error: --origin: ") and "not an encrypted" in r.stderr
    assert not (tmp_path / "enc").exists()
