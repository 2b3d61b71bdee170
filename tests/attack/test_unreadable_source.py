"""Attack of round 3: a source file the backup may not read. Every backend's upload path
(fs:// copies, object stores' chunked uploads) says it in one sentence that names the file
and gives the advice its errno calls for (exit 1, nothing marked complete)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapferry.errors import EXIT_FAILURE, unreadable_source
from tests.servers import S3Server
from tests.test_cli import assert_one_line_error
from tests.test_cli_remotes import remote_args

# Root reads anything; drop the capabilities that let it, as a normal user would be.
AS_A_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.parametrize("kind", ["fs", "s3-moto"])
def test_an_unreadable_source_file_is_named_with_advice(
    kind: str, request: pytest.FixtureRequest, snapshot_tree: Path, tmp_path: Path
) -> None:
    victim = snapshot_tree / "indexdb" / "17A3F0C2D1E50051" / "items.bin"
    victim.chmod(0)
    if kind == "fs":
        dst, args, env = f"fs://{tmp_path / 'bk'}", ["--progress", "off"], dict[str, str]()
    else:
        server: S3Server = request.getfixturevalue("moto_server")
        (dst, _opts), args, env = server.new_remote("vm"), remote_args(server), server.env
    p = subprocess.run([*AS_A_USER, sys.executable, "-m", "snapferry", "backup", "--src", str(snapshot_tree),
                        "--dst", dst, *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
    assert_one_line_error(p, EXIT_FAILURE, f"cannot read the source file {str(victim)!r}: Permission denied; "
                          "fix its permissions, or run snapferry as a user who may read it")
    assert not (tmp_path / "bk" / "backup_complete.ignore").exists()


def test_the_advice_follows_the_errno() -> None:
    def msg(code: int) -> str:
        return str(unreadable_source("/snap/f", OSError(code, "x")))

    assert msg(errno.EIO).endswith("the disk under it may be failing; check the kernel log")
    assert msg(errno.ENOENT).endswith("back up a snapshot, not live files")
    assert msg(errno.EACCES).endswith("fix its permissions, or run snapferry as a user who may read it")
    assert msg(errno.ELOOP).endswith("check the file and the filesystem it is on")
