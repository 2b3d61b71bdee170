"""Checks, outside the timing, that a tool's output is the dataset: restored trees and backups' part names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .datagen import GIB, Dataset
from .servers import BUCKET, Weed
from .tools import MIB

IGNORED_IN_TARGET = {"flock.lock", "restore-in-progress"}


def tree_sizes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for fn in files:
            full = Path(dirpath, fn)
            rel = full.relative_to(root).as_posix()
            if rel in IGNORED_IN_TARGET or (rel.endswith(".ignore") and "/" not in rel):
                continue
            out[rel] = full.stat().st_size
    return out


def sample_digest(path: Path, size: int) -> str:
    """Whole small files; for big ones 1 MiB windows at the start, end and around each 1 GiB boundary."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 4 * MIB:
            h.update(f.read())
            return h.hexdigest()
        offs = {0, max(0, size - MIB), size // 2}
        for b in range(GIB, size, GIB):
            offs.update({max(0, b - MIB // 2)})
        for off in sorted(offs):
            f.seek(off)
            h.update(f.read(MIB))
    return h.hexdigest()


class Verifier:
    """Checks a restored tree (or a backup's listing) against the dataset, outside the timing."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._sizes: dict[str, int] | None = None
        self._digests: dict[str, str] = {}

    def sizes(self) -> dict[str, int]:
        if self._sizes is None:
            self._sizes = tree_sizes(self.ds.snapshot)
        return self._sizes

    def tree(self, target: Path) -> None:
        want = self.sizes()
        got = tree_sizes(target)
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            extra = sorted(set(got) - set(want))[:5]
            wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
            raise AssertionError(f"{target} differs: missing {missing} extra {extra} wrong size {wrong}")
        # content: every file up to 4 MiB whole, sampled windows of bigger ones; a stride over small files
        keys = sorted(want)
        pick = [k for k in keys if want[k] > 4 * MIB] + keys[:: max(1, len(keys) // 200)]
        for k in pick:
            if k not in self._digests:
                self._digests[k] = sample_digest(self.ds.snapshot / k, want[k])
            if sample_digest(target / k, want[k]) != self._digests[k]:
                raise AssertionError(f"{target / k}: content differs from the dataset")

    def parts_fs(self, backup_root: Path) -> None:
        names = {
            p.relative_to(backup_root).as_posix()
            for p in backup_root.rglob("*") if p.is_file() and not p.name.endswith(".ignore")
        }
        self._check_names(names, str(backup_root))
        if not (backup_root / "backup_complete.ignore").exists():
            raise AssertionError(f"{backup_root} has no backup_complete.ignore")

    def parts_s3(self, weed: Weed, prefix: str) -> None:
        c = weed.client()
        names: set[str] = set()
        complete = False
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                rel = o["Key"][len(prefix) + 1 :]
                if rel == "backup_complete.ignore":
                    complete = True
                elif not rel.endswith(".ignore"):
                    names.add(rel)
        self._check_names(names, f"s3://{BUCKET}/{prefix}")
        if not complete:
            raise AssertionError(f"s3://{BUCKET}/{prefix} has no backup_complete.ignore")

    def _check_names(self, names: set[str], where: str) -> None:
        want: set[str] = set()
        for rel, size in self.sizes().items():
            if size == 0:
                want.add(f"{rel}/{0:016X}_{0:016X}_{0:016X}")
            for off in range(0, size, GIB):
                want.add(f"{rel}/{size:016X}_{off:016X}_{min(GIB, size - off):016X}")
        if names != want:
            raise AssertionError(
                f"{where}: {len(names)} parts, expected {len(want)}; "
                f"missing {sorted(want - names)[:3]} extra {sorted(names - want)[:3]}"
            )
