"""The command line against real object stores: what a user reads when a remote is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapferry.errors import EXIT_FAILURE, EXIT_USAGE
from tests.servers import SERVER_FIXTURES, ObjectServer

MIB = 1024 * 1024


def run(args: list[str], env: dict[str, str], drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPFERRY_", *drop))}
    return subprocess.run(
        [sys.executable, "-m", "snapferry", *args], capture_output=True, text=True, timeout=300,
        env={**clean, **env, "PYTHONUNBUFFERED": "1"},
    )


def remote_args(server: ObjectServer) -> list[str]:
    o = server.options
    args = ["--progress", "off", "--retries", "2"]
    if o.custom_s3_endpoint:
        args += ["--custom-s3-endpoint", o.custom_s3_endpoint]
    if o.creds_file_path:
        args += ["--creds-file-path", o.creds_file_path]
    if o.config_file_path:
        args += ["--config-file-path", o.config_file_path]
    return args


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "error" in ln.lower()]


@pytest.mark.parametrize("kind", ["s3-seaweedfs", "s3-moto", "gs", "azblob"])
def test_backup_and_restore_name_a_missing_bucket_alike(
    kind: str, request: pytest.FixtureRequest, snapshot_tree: Path, tmp_path: Path
) -> None:
    server: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    url = f"{server.scheme}://no-such-bucket-snapferry/vm"
    word = "container" if server.scheme == "azblob" else "bucket"
    lines = []
    for args in (["backup", "--src", str(snapshot_tree), "--dst", url],
                 ["restore", "--src", url, "--dst", str(tmp_path / "out")]):
        p = run([*args, *remote_args(server)], server.env)
        assert p.returncode == EXIT_FAILURE, p.stderr
        assert "Traceback" not in p.stderr, p.stderr
        errors = error_lines(p.stderr)
        assert len(errors) == 1, p.stderr
        assert f"{word} does not exist" in errors[0] and url in errors[0], errors[0]
        lines.append(errors[0].split(": ", 1)[1])
    assert lines[0] == lines[1], lines


def test_a_gs_run_writes_only_snapferry_lines_to_stderr(
    fake_gcs: ObjectServer, snapshot_tree: Path, tmp_path: Path
) -> None:
    url, _ = fake_gcs.new_remote("vm")
    for args in (["backup", "--src", str(snapshot_tree), "--dst", url, "--max-part-size", str(MIB)],
                 ["restore", "--src", url, "--dst", str(tmp_path / "out")]):
        p = run([*args, "--progress", "off"], fake_gcs.env)
        assert p.returncode == 0, p.stderr
        # No library's warning, logged or from the warnings module, reaches the user.
        stray = [ln for ln in p.stderr.splitlines() if "warn" in ln.lower()]
        assert not stray, p.stderr
        assert p.stderr.splitlines()[-1].startswith(("backed up", "restored")), p.stderr


def test_cloud_errors_name_our_flag_not_vmbackups(moto_server: ObjectServer, tmp_path: Path) -> None:
    url, _ = moto_server.new_remote("vm")
    empty = tmp_path / "empty-config"
    empty.write_text("")
    # No credentials anywhere: not in the environment, the files or an instance role.
    env = {"AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
           "AWS_EC2_METADATA_DISABLED": "true"}
    assert moto_server.options.custom_s3_endpoint
    p = run(["restore", "--src", url, "--dst", str(tmp_path / "out"), "--progress", "off",
             "--custom-s3-endpoint", moto_server.options.custom_s3_endpoint], env, drop=("AWS_",))
    errors = error_lines(p.stderr)
    assert p.returncode != 0 and len(errors) == 1, p.stderr
    assert "--creds-file-path" in errors[0] and "-credsFilePath" not in errors[0], errors[0]


def test_gs_without_credentials_is_one_line_not_google_auths_warnings(tmp_path: Path) -> None:
    # No emulator and no credentials: google-auth probes the GCE metadata server (here a
    # closed local port) and logs every failed probe as a warning.
    env = {"HOME": str(tmp_path), "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9"}
    p = run(["restore", "--src", "gs://some-bucket/vm", "--dst", str(tmp_path / "out"), "--progress", "off"], env,
            drop=("STORAGE_EMULATOR_HOST", "GOOGLE_", "CLOUDSDK_"))
    assert p.returncode == EXIT_USAGE, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "no Google credentials" in p.stderr and "--creds-file-path" in p.stderr, p.stderr
