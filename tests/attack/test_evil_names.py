"""Attacks of round 3: object names from a hostile or broken remote. Whatever a listing
holds, a restore writes only below its target, and a name it cannot use is one error
line with an exit code (never a traceback), with --json saying so too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import snapferry
from snapferry import errors
from tests.conftest import write_random
from tests.servers import S3Server
from tests.test_cli_remotes import remote_args, run

TAIL = "0000000000000005_0000000000000000_0000000000000005"

EVIL = {
    "dotdot": f"../../escape/{TAIL}",
    "absolute": f"/abs/escape/{TAIL}",
    "backslashes": f"data\\..\\..\\..\\escape/{TAIL}",
    "dot segment": f"data/./x/{TAIL}",
    "nul": f"data/nu\x00l/{TAIL}",
    "segment over 255 bytes": f"data/{'a' * 300}/{TAIL}",
    "long path": "data/" + "/".join(["d" * 200] * 5) + f"/{TAIL}",
}


def backup_with_object(server: S3Server, tmp_path: Path, name: str) -> str:
    """A complete backup at a new bucket's vm/b, plus an object `name` put below it by hand."""
    src = tmp_path / "snap"
    write_random(src / "data" / "ok.bin", 3000, 1)
    url, opts = server.new_remote("vm/b")
    snapferry.backup(url, str(src), progress="off", remote_options=opts)
    server.raw_put(url.split("/")[2], f"vm/b/{name}", b"hello")
    return url


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(EVIL))
def test_a_restore_of_an_s3_backup_with_a_hostile_name_writes_nothing_outside_and_says_why(
    case: str, moto_server: S3Server, tmp_path: Path
) -> None:
    url = backup_with_object(moto_server, tmp_path, EVIL[case])
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    before = _tree(tmp_path)
    p = run(["restore", "--src", url, "--dst", str(work / "out"), "--json", *remote_args(moto_server)],
            moto_server.env)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    out = json.loads(p.stdout)
    after = _tree(tmp_path)
    outside = {n for n in after - before if not n.startswith(os.path.join("work", "out"))}
    assert outside == set(), outside
    if p.returncode == 0:  # a name that is fine after all: restored below the target
        assert out["files_written"] == 2, out
        return
    # 3: the backup holds a name no restore may use; 1: this filesystem cannot hold it
    # (ENAMETOOLONG).
    assert out["ok"] is False and out["exit_code"] == p.returncode, (p.returncode, out)
    assert p.returncode in (1, 3) and issubclass(getattr(errors, out["kind"]), errors.SnapferryError), out
    assert len([ln for ln in p.stderr.splitlines() if "error" in ln.lower()]) == 1, p.stderr


def test_a_key_with_an_absolute_path_after_the_prefix_is_refused_as_unsafe_by_restore_and_copy(
    moto_server: S3Server, tmp_path: Path
) -> None:
    """`prefix//abs/...`: the path after the prefix is "/abs", refused like `..` (exit 3),
    not cut to "abs" and then looked for under a key that does not exist (exit 1)."""
    url = backup_with_object(moto_server, tmp_path, f"/abs/escape/{TAIL}")
    bucket = url.split("/")[2]
    for args in (["restore", "--src", url, "--dst", str(tmp_path / "out")],
                 ["copy", "--src", url, "--dst", f"s3://{bucket}/vm/copy"]):
        p = run([*args, "--json", *remote_args(moto_server)], moto_server.env)
        out = json.loads(p.stdout)
        assert p.returncode == errors.EXIT_BAD_BACKUP, (args[0], p.stderr)
        assert out["kind"] == "BadBackupError" and "unsafe path '/abs/escape'" in out["error"], out
        assert "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("ok.bin"))
