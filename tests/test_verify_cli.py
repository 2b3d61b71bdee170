"""`snapferry verify` and `snapferry info` on the command line: output, --json and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import snapferry
from tests.servers import S3Server

MIB = 1024 * 1024


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snapferry", *args], capture_output=True, text=True, check=False)


def test_verify_exits_0_clean_3_with_every_problem_listed(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    ok = _cli("verify", "--src", f"fs://{bk}", "--read-data", "--progress", "off")
    assert ok.returncode == 0, ok.stderr
    last = ok.stderr.strip().splitlines()[-1]
    assert last.startswith(f"verified fs://{bk} (snapferry, ")
    assert last.endswith("structure, 11 parts read (5.7 MiB): clean")

    values = bk / "data/small/2026_11/17A3F0C2D1E50050/values.bin"
    victim = sorted(values.iterdir())[1]
    body = bytearray(victim.read_bytes())
    body[7] ^= 1
    victim.write_bytes(body)
    (bk / "data/junk").write_bytes(b"x")
    bad = _cli("verify", "--src", f"fs://{bk}", "--read-data", "--progress", "off", "--json")
    assert bad.returncode == 3
    out = json.loads(bad.stdout)
    rel = str(victim.relative_to(bk))
    assert {(p["kind"], p["part"]) for p in out["problems"]} == {("content", rel), ("junk", "data/junk")}
    content = next(p for p in out["problems"] if p["kind"] == "content")
    assert content["expected"].startswith("block 0 crc32 ") and content["found"].startswith("crc32 ")
    assert "2 problem(s) found" in bad.stderr and bad.stderr.count("\n") == 1  # one error line
    # Structure alone cannot see the flipped byte, only the junk.
    s = _cli("verify", "--src", f"fs://{bk}", "--structure-only", "--progress", "off")
    assert s.returncode == 3 and "problem: junk: data/junk" in s.stderr and rel not in s.stderr


def test_verify_exits_1_when_it_cannot_check(seaweedfs: S3Server) -> None:
    o = seaweedfs.options
    assert o.custom_s3_endpoint and o.creds_file_path and o.config_file_path
    p = _cli("verify", "--src", "s3://no-such-bucket-here/vm", "--custom-s3-endpoint", o.custom_s3_endpoint,
             "--creds-file-path", o.creds_file_path, "--config-file-path", o.config_file_path, "--progress", "off")
    assert p.returncode == 1, p.stderr
    assert "no-such-bucket-here" in p.stderr and "Traceback" not in p.stderr


def test_read_data_subset_rejects_a_bad_slice(tmp_path: Path) -> None:
    p = _cli("verify", "--src", f"fs://{tmp_path}", "--read-data-subset", "4/3")
    assert p.returncode == 2 and "--read-data-subset '4/3'" in p.stderr


def test_info_prints_one_line_per_backup_and_json(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    p = _cli("info", "--src", f"fs://{bk}")
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert line.startswith(f"fs://{bk}: 5.7 MiB in 7 files (11 parts), made 2026-11-24T12:00:00Z by snapferry ")
    assert line.endswith("complete, checksummed (manifest v2); 1 month partition(s) (legacy index): 2026_11 3.7 MiB")
    j = json.loads(_cli("info", "--src", f"fs://{bk}", "--json").stdout)
    assert j["backup"]["parts"] == 11 and j["backup"]["complete"] is True and j["backups"] == []
