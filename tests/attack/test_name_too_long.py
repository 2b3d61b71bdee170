"""Attack of round 3: an object store holds a part path with a segment over 255 bytes,
which no Linux filesystem can name. A restore says so in one sentence naming the file and
the cause (the target filesystem refuses the name: ENAMETOOLONG), with the exit code of
other target-side write failures, and writes nothing outside its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.attack.test_evil_names import TAIL, backup_with_object
from tests.servers import S3Server
from tests.test_cli_remotes import remote_args, run


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_restore_of_a_name_the_target_cannot_hold_names_it_and_the_cause(
    where: str, moto_server: S3Server, tmp_path: Path
) -> None:
    long = "a" * 300
    path = f"data/{long}" if where == "file" else f"data/{long}/x"
    url = backup_with_object(moto_server, tmp_path, f"{path}/{TAIL}")
    out = tmp_path / "out"
    p = run(["restore", "--src", url, "--dst", str(out), "--json", *remote_args(moto_server)], moto_server.env)
    assert "Traceback" not in p.stderr, p.stderr
    res = json.loads(p.stdout)
    assert p.returncode == 1 and res["exit_code"] == 1 and res["kind"] == "SnapferryError", res
    assert f"data/{long}" in res["error"], res  # the file, or the directory on its way
    assert "the target filesystem refuses the name" in res["error"] and "ENAMETOOLONG" in res["error"], res
    assert len([ln for ln in p.stderr.splitlines() if "error" in ln.lower()]) == 1, p.stderr
    assert {q.name for q in tmp_path.iterdir()} == {"snap", "out"}
