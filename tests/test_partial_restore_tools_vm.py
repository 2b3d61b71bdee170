"""Partial restore everywhere it belongs, on a real VictoriaMetrics 1.145.0 backup: info's
partitions, verify --partitions, the drop-in vmrestore's flags, the manager's restore mark,
s3:// and an encrypted backup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import snapferry
from tests.dropin.helpers import run_script
from tests.partialdb import (
    Backup,
    by_month,
    export_from,
    ingest_and_back_up,
    months_on_disk,
    restore,
)
from tests.servers import S3Server
from tests.vm import (
    NEW,
    free_port,
    run_snapferry,
)


@pytest.fixture(scope="module")
def new_backup(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    return ingest_and_back_up(tmp_path_factory.mktemp("vm145"), NEW)



def test_info_lists_partitions_with_sizes(new_backup: Backup) -> None:
    info = json.loads(run_snapferry("info", f"--src={new_backup.url}", "--json").stdout)["backup"]
    assert info["layout"] == "per-partition"
    assert [p["name"] for p in info["partitions"]] == list(new_backup.months)
    root = Path(new_backup.url.removeprefix("fs://"))
    for p in info["partitions"]:  # the bytes of its three directories in the backup
        dirs = [root / "data" / r / p["name"] for r in ("small", "big", "indexdb")]
        on_disk = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
        assert p["bytes"] == on_disk
    text = run_snapferry("info", f"--src={new_backup.url}").stdout
    assert len(text.splitlines()) == 1  # one line per backup, the months on it
    assert "; 5 month partition(s) (per-partition index): 2026_01 " in text and ", 2026_02 " in text


def test_verify_checks_only_the_named_partitions(new_backup: Backup, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    shutil.copytree(Path(new_backup.url.removeprefix("fs://")), copy)
    victim = next((copy / "data/small/2026_01").rglob("values.bin/*"))
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF  # same size: only reading the data finds it
    victim.write_bytes(bytes(data))
    url = f"fs://{copy}"
    clean = run_snapferry("verify", f"--src={url}", "--read-data", "--partitions=2026_02,2026_03", check=False)
    assert clean.returncode == 0, clean.stderr
    for args in ([], ["--partitions=2026_01"], ["--since=2025-12-20"]):
        bad = run_snapferry("verify", f"--src={url}", "--read-data", *args, check=False)
        assert bad.returncode == 3 and "2026_01" in bad.stderr, bad.stderr
    r = run_snapferry("verify", f"--src={url}", "--partitions=1999_01", check=False)
    assert r.returncode == 2 and "has no partition 1999_01" in r.stderr


def test_dropin_vmrestore_takes_the_flags_of_pr_11186(new_backup: Backup, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    run_script("vmrestore", [f"-src={new_backup.url}", f"-storageDataPath={dst}",
                             "-restorePartitions=2026_02,2026_03,2026_04", "-restoreSince=2026-03-10",
                             f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert months_on_disk(dst) == {"2026_03", "2026_04"}
    bad = run_script("vmrestore", [f"-src={new_backup.url}", f"-storageDataPath={dst}", "-restorePartitions=2026-03",
                                   f"-httpListenAddr=127.0.0.1:{free_port()}"], check=False)
    assert bad.returncode == 2 and "is not a month partition name" in bad.stderr
    assert months_on_disk(dst) == {"2026_03", "2026_04"}


def test_a_restore_mark_names_partitions_for_the_init_container(new_backup: Backup, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = run_snapferry("manager", "restore", "create", new_backup.url, f"--storage-data-path={data}",
                        "--partitions=2026-3", check=False)
    assert bad.returncode == 2 and "is not a month partition name" in bad.stderr
    assert not (data / "backup_restore.ignore").exists()
    run_snapferry("manager", "restore", "create", new_backup.url, f"--storage-data-path={data}",
                  "--partitions=2026_03,2026_04", "--since=2026-04-01")
    got = json.loads(run_snapferry("manager", "restore", "get", f"--storage-data-path={data}").stdout)
    assert got == {"backup": new_backup.url, "partitions": "2026_03,2026_04", "since": "2026-04-01"}
    res = json.loads(run_snapferry("manager", "restore", f"--storage-data-path={data}", "--json",
                                   "--progress=off").stdout)
    assert [p["name"] for p in res["partitions"]] == ["2026_04"]
    assert months_on_disk(data) == {"2026_04"} and not (data / "backup_restore.ignore").exists()
    assert by_month(export_from(data, tmp_path)) == {"2026_04": by_month(new_backup.samples)["2026_04"]}


def test_partial_restore_from_s3_downloads_only_the_selection(
    new_backup: Backup, moto_server: S3Server, tmp_path: Path
) -> None:
    """The selection is made on the listing, so an object store works as fs:// does: the
    bytes downloaded are the selected months' and the rest of the layout's, no more."""
    url, opts = moto_server.new_remote()
    snapferry.copy(new_backup.url, url, remote_options=opts, progress="off")
    dst = tmp_path / "dst"
    res = snapferry.restore(url, str(dst), partitions="2026_04", remote_options=opts, progress="off")
    info = snapferry.info(url, remote_options=opts).backup
    assert info is not None
    month = next(p for p in info.partitions if p.name == "2026_04")
    outside = info.backup_bytes - sum(p.bytes for p in info.partitions)
    assert res.downloaded_bytes == res.backup_bytes == month.bytes + outside < info.backup_bytes
    assert months_on_disk(dst) == {"2026_04"}
    assert by_month(export_from(dst, tmp_path)) == {"2026_04": by_month(new_backup.samples)["2026_04"]}


def test_partial_restore_of_an_encrypted_backup(new_backup: Backup, tmp_path: Path) -> None:
    """Object names stay plain in an encrypted backup (docs/encryption.md), so months are
    selected as in any backup and their bytes decrypted as in a full restore."""
    key = tmp_path / "backup.key"
    run_snapferry("keygen", str(key))
    tree = tmp_path / "tree"
    restore(new_backup, tree)  # a database directory to back up, the backup's files exactly
    enc = f"fs://{tmp_path / 'enc'}"
    run_snapferry("backup", f"--src={tree}", f"--dst={enc}", "--encrypt", f"--encryption-key-file={key}", "--force")
    dst = tmp_path / "dst"
    no_key = run_snapferry("restore", f"--src={enc}", f"--dst={dst}", "--partitions=2026_01", check=False)
    assert no_key.returncode == 2 and not dst.exists()
    res = json.loads(run_snapferry("restore", f"--src={enc}", f"--dst={dst}", "--partitions=2026_01", "--json",
                                   f"--encryption-key-file={key}").stdout)
    assert [p["name"] for p in res["partitions"]] == ["2026_01"]
    assert months_on_disk(dst) == {"2026_01"}
    assert by_month(export_from(dst, tmp_path)) == {"2026_01": by_month(new_backup.samples)["2026_01"]}
