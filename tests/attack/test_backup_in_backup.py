"""Attack of round 3: a backup (or copy) whose destination lies inside another complete
backup. The outer backup's restore would write the inner one's parts into the data
directory, and the outer's next backup would delete them: refused at start (exit 2),
naming both places, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry.errors import EXIT_USAGE, UsageError
from tests.conftest import tree_digest
from tests.servers import S3Server
from tests.test_cli import assert_one_line_error, run
from tests.test_cli_remotes import remote_args
from tests.test_cli_remotes import run as run_env

MIB = 1024 * 1024


@pytest.mark.parametrize("kind", ["fs", "s3-seaweedfs"])
def test_backup_and_copy_refuse_a_destination_inside_a_complete_backup(
    kind: str, request: pytest.FixtureRequest, snapshot_tree: Path, tmp_path: Path
) -> None:
    if kind == "fs":
        outer, opts = f"fs://{tmp_path / 'vm'}", snapferry.RemoteOptions()
    else:
        server: S3Server = request.getfixturevalue("seaweedfs")
        outer, opts = server.new_remote("vm")
    other = f"{outer}-other"
    snapferry.backup(outer, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    snapferry.backup(other, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    for nested in (f"{outer}/sub", f"{outer}/a/b"):
        with pytest.raises(UsageError, match=f"--dst {nested} lies inside the backup {outer} "):
            snapferry.backup(nested, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
        with pytest.raises(UsageError, match=f"--dst {nested} lies inside the backup {outer} "):
            snapferry.copy(other, nested, remote_options=opts, progress="off")
    # Nothing was written below the outer backup: its restore is the snapshot, exactly.
    out = tmp_path / "out"
    snapferry.restore(outer, str(out), remote_options=opts, progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)
    # A sibling whose name only starts like the outer one is another place.
    res = snapferry.backup(f"{outer}x/sub", str(snapshot_tree), remote_options=opts, max_part_size=MIB,
                           progress="off")
    assert res.parts_uploaded > 0
    if kind == "fs":
        p = run("backup", "--src", str(snapshot_tree), "--dst", f"{outer}/sub", "--progress", "off")
        assert_one_line_error(p, EXIT_USAGE, f"{outer}/sub", f"{outer} ", "pick a destination outside")
        assert not (tmp_path / "vm" / "sub").exists()
    else:
        p = run_env(["copy", "--src", other, "--dst", f"{outer}/sub", *remote_args(server)], server.env)
        assert_one_line_error(p, EXIT_USAGE, f"{outer}/sub", f"{outer} ")


def test_a_backup_at_the_bucket_root_holds_every_prefix_of_the_bucket(
    seaweedfs: S3Server, snapshot_tree: Path
) -> None:
    inner, opts = seaweedfs.new_remote("sub")
    root = inner.rsplit("/", 1)[0]
    snapferry.backup(root, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    with pytest.raises(UsageError, match=f"--dst {inner} lies inside the backup {root} "):
        snapferry.backup(inner, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
