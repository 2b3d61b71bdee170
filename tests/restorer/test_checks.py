"""Checksums checked while restoring (on by default), the manifest as the inventory, honest counts.

A real SeaweedFS behind tests/faultproxy.py flips bytes of ranged GET bodies (the
whole response arrives, one byte wrong): only the manifest can see it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import BadBackupError
from snapferry.names import JOURNAL_SUFFIX, MANIFEST_FILE, TMP_SUFFIX
from snapferry.progress import human_bytes
from snapferry.restorer.downloader import Tuning
from snapferry.restorer.journal import read_journal
from tests.conftest import tree_digest
from tests.faultproxy import FaultPlan, FaultProxy, ranged_get
from tests.servers import S3Server

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"
FILE_SIZE = 3 * MIB + 17
P2 = f"{VALUES}/{FILE_SIZE:016X}_{2 * MIB:016X}_{MIB:016X}"
INDEX_FILE = "data/small/2026_11/17A3F0C2D1E50050/index.bin"


@pytest.fixture
def flips(seaweedfs: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(seaweedfs.endpoint, FaultPlan(rate=0.0)) as p:
        yield p
        assert not p.stats.errors, p.stats.errors


def _through(seaweedfs: S3Server, proxy: FaultProxy) -> snapferry.RemoteOptions:
    opts, _env = seaweedfs.via(proxy.endpoint.rstrip("/"))
    return opts


def _backup_flipping_p2(seaweedfs: S3Server, flips: FaultProxy, snapshot_tree: Path) -> str:
    """A backup on SeaweedFS; from now on every ranged GET of P2 arrives with a byte flipped."""
    url, opts = seaweedfs.new_remote()
    snapferry.backup(url, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    flips.set_plan(FaultPlan(rate=1.0, kinds=["flip"], match=lambda q: ranged_get(q) and q.path.endswith(P2)))
    return url


@pytest.mark.parametrize("inplace", [False, True])
def test_a_flipped_byte_in_transit_is_fetched_again_and_the_restore_is_identical(
    seaweedfs: S3Server, flips: FaultProxy, snapshot_tree: Path, tmp_path: Path, inplace: bool
) -> None:
    url, opts = seaweedfs.new_remote()
    snapferry.backup(url, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    # parts.json and appliedRetention.txt are not checked (vmbackup rewrites them under the same
    # name without updating snapferry's manifest): their bodies are left alone.
    checked = lambda q: ranged_get(q) and "/data/big/" not in q.path and "parts.json" not in q.path  # noqa: E731
    flips.set_plan(FaultPlan(rate=1.0, kinds=["flip"], limit=2, seed=3, match=checked))
    out = tmp_path / "out"
    tuning = Tuning(concurrency=2, block_size=256 * 1024, max_inflight_bytes=8 * MIB)
    r = snapferry.restore(url, str(out), remote_options=_through(seaweedfs, flips), progress="off",
                          tuning=tuning, skip_file_preallocation=inplace)
    assert flips.stats.faults["flip"] == 2  # two bodies really arrived with a wrong byte
    assert tree_digest(out) == tree_digest(snapshot_tree)
    assert (r.parts_verified, r.parts_unverified) == (9, 2)  # parts.json, appliedRetention.txt


def test_a_part_wrong_every_time_fails_the_restore_naming_it_and_nothing_bad_is_renamed(
    seaweedfs: S3Server, flips: FaultProxy, snapshot_tree: Path, tmp_path: Path
) -> None:
    url = _backup_flipping_p2(seaweedfs, flips, snapshot_tree)
    out = tmp_path / "out"
    with pytest.raises(BadBackupError) as e:
        snapferry.restore(url, str(out), remote_options=_through(seaweedfs, flips), progress="off",
                          tuning=Tuning(concurrency=2))
    assert P2 in str(e.value) and e.value.exit_code == 3
    assert flips.stats.faults["flip"] == 3  # the first download and two more
    assert not (out / VALUES).exists()
    # The parts that were right are journalled for a resume; the wrong one is not.
    done = read_journal(str(out / (VALUES + JOURNAL_SUFFIX)), FILE_SIZE)
    assert done is not None and (2 * MIB, MIB) not in done
    # Without the flips the rerun fetches only what is missing and ends identical.
    flips.set_plan(FaultPlan(rate=0.0))
    r = snapferry.restore(url, str(out), remote_options=_through(seaweedfs, flips), progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)
    assert not list(out.rglob("*" + TMP_SUFFIX + "*"))
    assert r.resumed_bytes >= sum(size for _off, size in done) > 0  # other files may have journals too


def test_no_checksums_switches_the_check_off(
    seaweedfs: S3Server, flips: FaultProxy, snapshot_tree: Path, tmp_path: Path
) -> None:
    url = _backup_flipping_p2(seaweedfs, flips, snapshot_tree)
    out = tmp_path / "out"
    r = snapferry.restore(url, str(out), remote_options=_through(seaweedfs, flips), progress="off", checksums=False)
    assert (r.parts_verified, r.parts_unverified) == (0, 11)
    assert flips.stats.faults["flip"] == 1
    assert tree_digest(out) != tree_digest(snapshot_tree)  # what the default check is there for


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snapferry", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("verify", [False, True])
def test_a_lost_single_part_file_is_an_incomplete_backup(snapshot_tree: Path, tmp_path: Path, verify: bool) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    lost = next((bk / INDEX_FILE).iterdir())
    lost.unlink()
    out = tmp_path / "out"
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(out), "--progress", "off", *(["--verify"] * verify))
    assert p.returncode == 3, p.stderr
    assert f"{INDEX_FILE}/{lost.name}" in p.stderr and "incomplete" in p.stderr
    assert not (out / INDEX_FILE).exists()
    # copy refuses to spread it too.
    c = _cli("copy", "--src", f"fs://{bk}", "--dst", f"fs://{tmp_path / 'copy'}", "--progress", "off")
    assert c.returncode == 3 and lost.name in c.stderr


def test_an_unreadable_manifest_fails_verify_but_not_a_plain_restore(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    (bk / MANIFEST_FILE).write_bytes(b"snapferry-checksums 9 sha3 1\n")
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "a"), "--progress", "off", "--verify")
    assert p.returncode == 3 and "unreadable" in p.stderr and MANIFEST_FILE in p.stderr
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "b"), "--progress", "off", "--json")
    assert p.returncode == 0 and "unreadable" in p.stderr  # said, not silent
    assert json.loads(p.stdout)["parts_verified"] == 0


def test_the_summary_counts_what_an_earlier_run_left_as_kept(snapshot_tree: Path, tmp_path: Path) -> None:
    bk, out = tmp_path / "bk", tmp_path / "out"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    snapferry.restore(f"fs://{bk}", str(out), progress="off")
    (out / VALUES).unlink()
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(out), "--progress", "off", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    total = res["backup_bytes"]
    # Kept: every file but values.bin and the two files always transferred.
    small = len('{"parts":["17A3F0C2D1E50050"]}') + len("1700000000")
    assert res["kept_bytes"] == total - FILE_SIZE - small and res["downloaded_bytes"] == FILE_SIZE + small
    (out / VALUES).unlink()
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(out), "--progress", "off")
    assert p.returncode == 0
    summary = p.stderr.strip().splitlines()[-1]
    assert f"kept {human_bytes(res['kept_bytes'])} from an earlier run" in summary, summary
    assert "kept 0 B" not in summary


def test_a_manifest_another_tool_left_stale_is_no_inventory(snapshot_tree: Path, tmp_path: Path) -> None:
    """vmbackup over a snapferry backup deletes and adds parts and leaves the manifest as it was:
    the parts missing then are not lost, but the manifest can no longer tell; --verify refuses."""
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    gone = next((bk / INDEX_FILE).iterdir())
    gone.unlink()
    (snapshot_tree / INDEX_FILE).unlink()
    new = bk / "data/small/2026_11/17A3F0C2D1E50050/new.bin/0000000000000003_0000000000000000_0000000000000003"
    new.parent.mkdir()
    new.write_bytes(b"abc")
    (snapshot_tree / "data/small/2026_11/17A3F0C2D1E50050/new.bin").write_bytes(b"abc")
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "a"), "--progress", "off", "--json")
    assert p.returncode == 0, p.stderr
    assert "does not list 1 of its parts" in p.stderr
    assert tree_digest(tmp_path / "a") == tree_digest(snapshot_tree)
    assert json.loads(p.stdout)["parts_verified"] == 8  # the parts it does list are still checked
    p = _cli("restore", "--src", f"fs://{bk}", "--dst", str(tmp_path / "b"), "--progress", "off", "--verify")
    assert p.returncode == 3 and "cannot verify" in p.stderr and "new.bin" in p.stderr
