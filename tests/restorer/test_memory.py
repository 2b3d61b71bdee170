"""Per-file costs of a restore: what it keeps alive must not grow much with the file count,
and per-file work in the download path stays once per part.

Measured as tracemalloc's peak over a whole restore of N and of 2N small files from a real
fs:// backup: the difference divided by N is what each extra file costs. The pool's blocks
are mmaps (not traced), so the peak is the restore's own Python objects. Load-independent:
no clock is read.
"""

from __future__ import annotations

import os
import random
import sys
import tracemalloc
from pathlib import Path

import pytest

import snapferry
from snapferry.parts import Part
from tests.conftest import tree_digest

# The plan (a Part, a FilePlan and a manifest entry per file) costs about 650 bytes per file.
# Keeping every TargetFile to the end of the run (its dict, lock, counters) cost about
# 1,850: a restore of 100,000 small files peaked at 292 MiB.
MAX_BYTES_PER_FILE = 1200


def _backup_of(tmp_path: Path, n: int) -> tuple[Path, str]:
    src = tmp_path / f"snap{n}"
    rng = random.Random(n)
    for i in range(n):
        f = src / "data" / f"p{i // 5:05d}" / f"f{i % 5}.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(rng.randbytes(rng.randrange(1, 512)))
    bk = f"fs://{tmp_path / f'bk{n}'}"
    snapferry.backup(bk, str(src), progress="off")
    return src, bk


def _restore_peak(tmp_path: Path, n: int) -> int:
    src, bk = _backup_of(tmp_path, n)
    dst = tmp_path / f"dst{n}"
    tracemalloc.start()
    try:
        res = snapferry.restore(bk, str(dst), progress="off")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.files_written == n and res.parts_verified == n
    assert tree_digest(dst) == tree_digest(src)
    return peak


def test_a_restore_keeps_no_per_file_state_beyond_its_plan(tmp_path: Path) -> None:
    n = 1000
    small, big = _restore_peak(tmp_path, n), _restore_peak(tmp_path, 2 * n)
    per_file = (big - small) / n
    assert per_file < MAX_BYTES_PER_FILE, f"{per_file:.0f} bytes per restored file"


def test_the_download_path_formats_each_part_name_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Part.name is formatted anew on every use (three 16-digit hex fields): the restorer
    # looked each part's name up four times, once per step, for every small file.
    _, bk = _backup_of(tmp_path, 100)
    real = Part.name
    calls: list[str] = []

    def counting(self: Part) -> str:
        calls.append(sys._getframe(1).f_code.co_filename)
        return real.fget(self)  # type: ignore[no-any-return,misc]

    monkeypatch.setattr(Part, "name", property(counting))
    res = snapferry.restore(bk, str(tmp_path / "dst"), progress="off")
    monkeypatch.undo()
    assert res.files_written == 100 and res.parts_verified == 100
    in_restorer = [f for f in calls if os.sep + "restorer" + os.sep in f]
    assert len(in_restorer) == 100
