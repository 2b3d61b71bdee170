"""verify's read path is the restore's (ranges, bounded buffer pool), and --structure-only stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import snapferry
from snapferry.actions.readdata import _range_size
from snapferry.checksums import BLOCK
from snapferry.findings import ProblemKind
from snapferry.parts import Part
from snapferry.progress import Progress
from snapferry.remotes.fs import FsRemote
from snapferry.restorer.downloader import Downloader, Tuning
from snapferry.restorer.session import RestoreSession
from snapferry.throttle import Throttle
from tests.conftest import write_random

MIB = 1024 * 1024


@pytest.mark.parametrize("concurrency", [1, 3, 8])
@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK, 3 * BLOCK + 5, 100 * MIB, 1100 * MIB])
def test_read_ranges_are_cut_as_the_restore_cuts_checked_parts(tmp_path: Path, size: int, concurrency: int) -> None:
    part = Part(path="data/x.bin", file_size=size, offset=0, size=size, actual_size=size)
    tuning = Tuning(concurrency=concurrency)
    with Progress("restore", 0, "off") as progress:
        d = Downloader(FsRemote(str(tmp_path)).open_part, RestoreSession(str(tmp_path / "out")), [], tuning,
                       Throttle(0), progress, expected={part.name: []})
        want = d._chunk_size(part, None, True)  # not copied in the kernel, checked against the manifest
    assert _range_size(part, concurrency, tuning.min_chunk_size) == want
    assert want % BLOCK == 0


def test_read_data_with_more_workers_than_pool_blocks(tmp_path: Path) -> None:
    """40 workers share the 16 blocks of the pool (64 MiB / 4 MiB): every part is still read
    and checked, and a flipped byte is found in exactly its part."""
    src = tmp_path / "snap"
    for i in range(40):
        write_random(src / "data" / "small" / f"{i:02d}" / "values.bin", 300_000 + i, i)
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(src), progress="off")
    clean = snapferry.verify(f"fs://{bk}", read_data=True, concurrency=40, progress="off")
    assert clean.problems == [] and clean.parts_read == 40 and clean.bytes_read == clean.backup_bytes
    victim = next(p for p in bk.rglob("*") if p.is_file() and "/17/values.bin/" in p.as_posix())
    body = bytearray(victim.read_bytes())
    body[12345] ^= 0x01
    victim.write_bytes(bytes(body))
    r = snapferry.verify(f"fs://{bk}", read_data=True, concurrency=40, progress="off")
    assert [(p.kind, p.part) for p in r.problems] == [(ProblemKind.CONTENT, victim.relative_to(bk).as_posix())]


def test_structure_only_imports_neither_the_read_machinery_nor_the_backup(snapshot_tree: Path,
                                                                           tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), progress="off")
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "snapferry", "verify", "--src", f"fs://{bk}",
                        "--structure-only", "--json"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert '"problems": []' in p.stdout
    names = {ln.rsplit("|", 1)[1].strip() for ln in p.stderr.splitlines() if ln.startswith("import time:")}
    assert "snapferry.actions.verify" in names
    assert sorted(n for n in names if n.startswith(("snapferry.actions.backup", "snapferry.restorer",
                                                    "snapferry.snapshot", "urllib.request"))) == []
