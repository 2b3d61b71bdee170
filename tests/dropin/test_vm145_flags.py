"""Flags vmbackup and vmrestore 1.145.0 have and 1.79.5 lacks: -s3SSEAlgorithm,
-s3ChecksumAlgorithm and -secret.flags, translated and run for real (moto reads back the
server-side encryption of what was written; the log is searched for a hidden value)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import snapferry
from snapferry.dropin.tables import Tool
from snapferry.errors import EXIT_USAGE
from tests.conftest import write_random
from tests.dropin.test_tables import tr
from tests.servers import S3Server
from tests.test_cli_remotes import remote_args, run

MIB = 1024 * 1024


def test_the_new_upload_flags_translate_for_backup_and_are_ignored_by_restore() -> None:
    argv = " ".join(tr(Tool.VMBACKUP, "-snapshotName=S", "-dst=s3://b/p", "-s3SSEAlgorithm=AES256",
                       "-s3ChecksumAlgorithm=CRC32"))
    assert "--s3-sse-algorithm AES256" in argv and "--s3-checksum-algorithm CRC32" in argv
    restore = " ".join(tr(Tool.VMRESTORE, "-src=s3://b/p", "-storageDataPath=/d", "-s3SSEAlgorithm=AES256"))
    assert "sse" not in restore


def test_sse_algorithm_reaches_every_object_and_a_kms_key_with_aes256_stops_the_start(
    moto_server: S3Server, tmp_path: Path
) -> None:
    src = tmp_path / "snap"
    write_random(src / "data" / "small.bin", 4096, 1)  # a single PUT (the fast path)
    write_random(src / "data" / "big.bin", 40 * MIB, 2)  # multipart (botocore)
    url, _opts = moto_server.new_remote("sse")
    bucket, prefix = url.split("://", 1)[1].split("/", 1)
    env = dict(moto_server.env)
    p = run(["backup", "--src", str(src), "--dst", url, "--s3-sse-algorithm", "AES256",
             *remote_args(moto_server)], env)
    assert p.returncode == 0, p.stderr
    client = moto_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    parts = [k for k in keys if "/data/" in k]
    assert parts, keys
    for key in parts:
        assert client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption") == "AES256", key

    url2, _ = moto_server.new_remote("sse2")
    bad = run(["backup", "--src", str(src), "--dst", url2, "--s3-sse-algorithm", "AES256",
               "--s3-sse-kms-key-id", "k-1", *remote_args(moto_server)], env)
    assert bad.returncode == EXIT_USAGE, bad.stderr
    assert "--s3-sse-algorithm AES256" in bad.stderr and "Traceback" not in bad.stderr
    bucket2 = url2.split("://", 1)[1].split("/", 1)[0]
    assert client.list_objects_v2(Bucket=bucket2).get("KeyCount", 0) == 0


def _vmbackup(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "snapferry-vmbackup"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_secret_flags_hide_the_values_they_name_and_a_typo_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "vm"
    snap = data / "snapshots" / "20261207120000-0000000000000001"
    write_random(snap / "data" / "x.bin", 4096, 3)
    secret = "s3cr3t-kms-key-77"
    common = [f"-storageDataPath={data}", f"-snapshotName={snap.name}", f"-dst=fs://{tmp_path / 'bk'}",
              f"-s3SSEKMSKeyId={secret}", "-loggerLevel=INFO", f"-httpListenAddr=127.0.0.1:{_free()}"]
    shown = _vmbackup(*common)
    assert secret in shown.stderr + shown.stdout  # without -secret.flags the log names it: the test can fail
    hidden = _vmbackup(*common, "-secret.flags=s3SSEKMSKeyId")
    assert hidden.returncode == shown.returncode == 0, hidden.stderr
    assert secret not in hidden.stderr + hidden.stdout and "<hidden>" in hidden.stderr
    typo = _vmbackup(*common, "-secret.flags=s3SSEKmsKeyId")
    assert typo.returncode == EXIT_USAGE and "s3SSEKmsKeyId" in typo.stderr and secret not in typo.stderr
    result = snapferry.verify(f"fs://{tmp_path / 'bk'}", progress="off")
    assert result.complete and not result.problems, result


def _free() -> int:
    from tests.servers import free_port

    return free_port()
