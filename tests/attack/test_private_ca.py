"""Attacks of round 3: an S3 endpoint behind TLS with a private CA (a MinIO inside the
cluster), trusted the ways botocore documents: AWS_CA_BUNDLE, or `ca_bundle` in the
config profile. Backups (botocore's writes) and restores (our reads) must both trust it."""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import free_port
from tests.conftest import tree_digest, write_random
from tests.servers import _clean_env, _venv_tool, start_server
from tests.test_cli_remotes import run


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """moto's S3 over https with a self-signed certificate: (endpoint, its CA file)."""
    work = tmp_path_factory.mktemp("tls-moto")
    ca, key = work / "ca.pem", work / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(ca), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    port: list[int] = []

    def cmd() -> list[str]:
        port[:] = [free_port()]
        return [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port[0]), "-s", "-c", str(ca),
                "-k", str(key)]

    def ready() -> bool:
        ctx = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(f"https://127.0.0.1:{port[0]}/", timeout=2, context=ctx):
            return True

    proc = start_server("tls-moto", cmd, ready, work, timeout=60, env=_clean_env("AWS_"))
    try:
        yield f"https://127.0.0.1:{port[0]}", ca
    finally:
        proc.stop()


@pytest.mark.parametrize("how", ["AWS_CA_BUNDLE", "profile ca_bundle"])
def test_backup_and_restore_trust_a_private_ca_the_way_botocore_is_told(
    how: str, tls_moto: tuple[str, Path], tmp_path: Path
) -> None:
    endpoint, ca = tls_moto
    creds, config = tmp_path / "credentials", tmp_path / "config"
    creds.write_text("[default]\naws_access_key_id = k\naws_secret_access_key = s\n")
    config.write_text("[default]\nregion = us-east-1\n" + (f"ca_bundle = {ca}\n" if how != "AWS_CA_BUNDLE" else ""))
    env = {"AWS_CA_BUNDLE": str(ca)} if how == "AWS_CA_BUNDLE" else {}
    args = ["--custom-s3-endpoint", endpoint, "--creds-file-path", str(creds), "--config-file-path", str(config),
            "--progress", "off", "--retries", "1"]
    src = tmp_path / "snap"
    write_random(src / "data" / "small.bin", 3000, 1)
    write_random(src / "data" / "big.bin", 300_000, 2)
    bucket = f"ca-{'env' if env else 'profile'}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                 region_name="us-east-1", verify=str(ca)).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/vm"
    p = run(["backup", "--src", str(src), "--dst", url, *args], env, drop=("AWS_",))
    assert p.returncode == 0, p.stderr
    p = run(["restore", "--src", url, "--dst", str(tmp_path / "out"), *args], env, drop=("AWS_",))
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "out" / "data") == tree_digest(src / "data")
