"""Running the drop-in scripts as a user does, and reading what they left."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.datagen import backup_digest, tree_digest
from tests.servers import S3Server

_TIMEOUT = 300.0
TOOLS = ("vmbackup", "vmrestore", "vmbackupmanager")


def script(tool: str) -> str:
    """The installed console script `snapferry-<tool>`, beside this interpreter."""
    path = Path(sys.executable).parent / f"snapferry-{tool}"
    assert path.exists(), f"{path} is not installed; run pip install -e . (pyproject.toml [project.scripts])"
    return str(path)


def run_script(
    tool: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True,
    via_snapferry: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`snapferry-<tool> ARGS` (or `snapferry <tool> ARGS`), in a subprocess."""
    prefix = [str(Path(sys.executable).parent / "snapferry"), tool] if via_snapferry else [script(tool)]
    cmd = [*prefix, *args]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL,
                          env=full_env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                             f"stderr:\n{proc.stderr[-3000:]}")
    return proc


def s3_objects(server: S3Server, url: str) -> dict[str, str]:
    """sha256 of every object under an s3:// URL, keyed by the name below the prefix."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client: Any = server.client()
    out: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = hashlib.sha256(body).hexdigest()
    return out


def parts_of(where: Path | dict[str, str]) -> dict[str, str]:
    """The part objects of a backup (fs:// directory or s3 listing), without the *.ignore markers."""
    digest = tree_digest(where) if isinstance(where, Path) else where
    return {k: v for k, v in digest.items() if not k.endswith(".ignore")}


def restores_to(backup_dir: Path) -> dict[str, str]:
    return backup_digest(backup_dir)
