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


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(EVIL))
def test_a_restore_of_an_s3_backup_with_a_hostile_name_writes_nothing_outside_and_says_why(
    case: str, moto_server: S3Server, tmp_path: Path
) -> None:
    src = tmp_path / "snap"
    write_random(src / "data" / "ok.bin", 3000, 1)
    url, opts = moto_server.new_remote("vm/b")
    snapferry.backup(url, str(src), progress="off", remote_options=opts)
    bucket = url.split("/")[2]
    moto_server.raw_put(bucket, f"vm/b/{EVIL[case]}", b"hello")
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
    # (ENAMETOOLONG), or the leading "/" of "//abs" was cut and the key it names is absent.
    assert out["ok"] is False and out["exit_code"] == p.returncode, (p.returncode, out)
    assert p.returncode in (1, 3) and issubclass(getattr(errors, out["kind"]), errors.SnapferryError), out
    assert len([ln for ln in p.stderr.splitlines() if "error" in ln.lower()]) == 1, p.stderr
