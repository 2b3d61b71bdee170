"""Start-up: every command imports only what it runs (no clock here: module names, not times).

`python -X importtime` writes one stderr line per module imported; these tests run the
real CLI in a subprocess against real files and read those lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from snapferry.cli.main import COMMANDS, cli
from snapferry.dropin import Tool
from snapferry.remotes import RemoteOptions
from tests.conftest import tree_digest
from tests.servers import S3Server

# Packages an fs:// run never needs: cloud SDKs, HTTP clients, the manager's web stack,
# the push-metrics client (loaded only when --push-metrics-url pushes).
# ctypes.util: finding the C library the long way runs `ldconfig -p` (subprocess) at start-up.
NOT_FOR_FS = ("boto3", "botocore", "google", "azure", "starlette", "uvicorn", "prometheus_client", "requests",
              "urllib3", "snapferry.manager", "snapferry.dropin", "snapferry.remotes.s3",
              "snapferry.remotes.gcs", "snapferry.remotes.azblob", "ctypes.util", "subprocess",
              "snapferry.findings",  # verify's and info's result classes: created at import, for nothing
              "snapferry.pushmetrics")  # loaded only when --push-metrics-url pushes
# ... and a run (not --version) reads no package metadata: crc32c's __init__ would (crc32c_ext.py);
# and opens no connection: the lease names the host through os.uname.
NOT_FOR_FS_RUN = (*NOT_FOR_FS, "importlib.metadata", "crc32c", "socket")
# ... and a restore needs no HTTP at all.
NOT_FOR_FS_RESTORE = (*NOT_FOR_FS_RUN, "urllib.request", "http.client",
                      "snapferry.actions.backup", "snapferry.snapshot")
# ... and no retry machinery while nothing fails (tenacity probes asyncio and tornado): every
# request's first attempt runs without it, nothing-changed or not.
NOT_FOR_FS_NOTHING_CHANGED_RESTORE = (*NOT_FOR_FS_RESTORE, "tenacity", "asyncio")


def imported(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m snapferry ARGS` (in `env`, else ours); the modules it imported."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "snapferry", *args], capture_output=True,
                       text=True, timeout=300, env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"})
    names = {ln.rsplit("|", 1)[1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")}
    assert "snapferry.cli.main" in names, p.stderr[-2000:]  # the importtime output is really there
    return p, names


def offenders(names: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == b or n.startswith(b + ".") for b in banned))


def test_restore_help_imports_no_sdk_or_manager() -> None:
    p, names = imported("restore", "--help")
    assert p.returncode == 0 and "--src" in p.stdout, p.stderr[-2000:]
    assert offenders(names, NOT_FOR_FS_RESTORE) == []
    # only the command that runs is loaded
    assert offenders(names, ("snapferry.cli.backup_cmd", "snapferry.cli.manager_cmd", "snapferry.cli.verify_cmd",
                             "snapferry.cli.dropin_cmd", "snapferry.actions")) == []


def test_version_imports_no_command() -> None:
    p, names = imported("--version")
    assert p.returncode == 0 and "snapferry" in p.stdout
    # (--version reads the package metadata: importlib.metadata is allowed here)
    assert offenders(names, (*NOT_FOR_FS, "urllib.request", "http.client", "snapferry.cli.restore_cmd",
                             "snapferry.actions", "snapferry.restorer")) == []


def test_fs_backup_and_restore_import_only_what_they_run(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = f"fs://{tmp_path / 'bk'}"
    out = tmp_path / "out"
    p, names = imported("backup", "--src", str(snapshot_tree), "--dst", bk, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    full = json.loads(p.stdout)["uploaded_bytes"]
    assert full > 1024 * 1024
    assert offenders(names, NOT_FOR_FS_RUN) == []
    downloaded = []
    for run in ("full", "nothing changed"):
        p, names = imported("restore", "--src", bk, "--dst", str(out), "--json")
        assert p.returncode == 0, p.stderr[-2000:]
        downloaded.append(json.loads(p.stdout)["downloaded_bytes"])
        assert offenders(names, NOT_FOR_FS_NOTHING_CHANGED_RESTORE) == [], run
    assert downloaded[0] > 1024 * 1024 > downloaded[1]  # the second run kept the files (a few metadata bytes move)
    assert tree_digest(out) == tree_digest(snapshot_tree)
    p, names = imported("backup", "--src", str(snapshot_tree), "--dst", bk, "--json")  # nothing changed
    assert p.returncode == 0 and json.loads(p.stdout)["uploaded_bytes"] < full // 100, p.stderr[-2000:]
    assert offenders(names, NOT_FOR_FS_RUN) == []


def test_push_metrics_still_loads_its_client_when_asked(snapshot_tree: Path, tmp_path: Path) -> None:
    """The lazy import is where the push happens: a push to a closed port is tried (and warned about)."""
    bk = f"fs://{tmp_path / 'bk'}"
    p, names = imported("backup", "--src", str(snapshot_tree), "--dst", bk,
                        "--push-metrics-url", "http://127.0.0.1:9/metrics/job/x")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "prometheus_client" in names and "urllib.request" in names
    assert "pushing metrics to http://127.0.0.1:9/metrics/job/x failed" in p.stderr


def test_every_lazy_command_resolves_to_its_click_command() -> None:
    ctx = click.Context(cli)
    assert set(cli.list_commands(ctx)) == set(COMMANDS)
    assert {t.value for t in Tool} <= set(COMMANDS)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert isinstance(cmd, click.Command) and cmd.name == name
    assert cli.get_command(ctx, "no-such-command") is None


@pytest.mark.parametrize("args", [["--help"], ["manager", "--help"], ["vmrestore", "-help"]])
def test_help_of_lazy_commands(args: list[str]) -> None:
    p = subprocess.run([sys.executable, "-m", "snapferry", *args], capture_output=True, text=True, timeout=300)
    text = p.stdout + p.stderr
    assert "Traceback" not in text, text
    if args == ["--help"]:
        assert p.returncode == 0
        for name in COMMANDS:
            assert f"  {name} " in p.stdout, p.stdout
    elif args[0] == "manager":
        assert p.returncode == 0 and "--keep-last-daily" in p.stdout
    else:
        assert "-storageDataPath" in text


def static_keys(server: S3Server, opts: RemoteOptions, keys: str) -> tuple[list[str], dict[str, str]]:
    """CLI flags and an environment that give the server's static keys one way: the
    environment, or a credentials file (no other AWS_ or SNAPFERRY_ setting leaks in)."""
    assert opts.custom_s3_endpoint and opts.creds_file_path
    flags = ["--custom-s3-endpoint", opts.custom_s3_endpoint]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNAPFERRY_"))}
    if keys == "environment":
        env |= {k: v for k, v in server.env.items() if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    else:
        flags += ["--creds-file-path", opts.creds_file_path]
    return flags, env


@pytest.mark.parametrize("keys", ["environment", "credentials file"])
def test_s3_reads_with_static_keys_never_import_botocore(
    keys: str, seaweedfs: S3Server, snapshot_tree: Path, tmp_path: Path
) -> None:
    """botocore costs ~0.5 s of start-up; backup, restore, verify and info on s3:// with
    static keys go through the signed-HTTP path alone (server-side copies still need it)."""
    url, opts = seaweedfs.new_remote("vm")
    flags, env = static_keys(seaweedfs, opts, keys)
    for run in ("full", "nothing changed"):
        # Single PUTs, the lease's exclusive create and its DELETE are signed by us too;
        # only multipart uploads, server-side copies and other credentials need botocore.
        p, names = imported("backup", "--src", str(snapshot_tree), "--dst", url, "--progress", "off", *flags,
                            env=env)
        assert p.returncode == 0, (run, p.stderr[-2000:])
        assert offenders(names, ("botocore", "boto3")) == [], run
    p, names = imported("copy", "--src", url, "--dst", url + "-copy", "--progress", "off", *flags, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "botocore" in names  # server-side copies are botocore's: the checks see it when it loads
    out = tmp_path / "out"
    downloaded = []
    for args in (["restore", "--src", url, "--dst", str(out), "--json"],
                 ["restore", "--src", url, "--dst", str(out), "--json"],
                 ["verify", "--src", url, "--structure-only"],
                 ["verify", "--src", url],
                 ["info", "--src", url]):
        p, names = imported(*args, *flags, env=env)
        assert p.returncode == 0, (args, p.stderr[-2000:])
        assert offenders(names, ("botocore", "boto3")) == [], args
        if args[0] == "restore":
            downloaded.append(json.loads(p.stdout)["downloaded_bytes"])
    assert downloaded[0] > 1024 * 1024 > downloaded[1]  # full, then nothing changed
    assert tree_digest(out) == tree_digest(snapshot_tree)
