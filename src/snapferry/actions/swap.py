"""`partitions-swap`: move month partitions from a staging directory into a stopped
database's directory, by renames on one filesystem (seconds, not a download).

The second step of a partial restore (docs/partial-restore.md): the newest months
were restored into the live directory and the database serves them; the rest was
restored meanwhile with `restore --partitions ... --dst STAGE`. With the database
stopped, each staged month's `data/small/M`, `data/big/M` and `data/indexdb/M` is
renamed into place. A month the live directory already has (the database wrote
to it meanwhile) is refused, never merged: two indexes of one month made by two
databases are not known to combine correctly, so the swap moves nothing then.

Crash safety: `restore-in-progress` (VictoriaMetrics refuses to start while it is
there) and a record of the months being moved are written first; a rerun finishes
the moves the record names. The cache directory is removed at the end: its query
results were computed while the staged months were missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass

from .. import durable
from ..errors import BadBackupError, UsageError
from ..lock import DirLock
from ..names import RESTORE_IN_PROGRESS_FILE, SWAP_RECORD_FILE
from ..partitions import PARTITION_ROOTS, parse_partition_names

CACHE_DIR = "cache"


@dataclass(frozen=True, slots=True)
class SwapResult:
    stage: str
    dst: str
    partitions: tuple[str, ...]
    moved_dirs: int
    cache_removed: bool

    def to_dict(self) -> dict[str, object]:
        return {"action": "partitions-swap", "stage": self.stage, "dst": self.dst,
                "partitions": list(self.partitions), "moved_dirs": self.moved_dirs,
                "cache_removed": self.cache_removed}


def staged_months(stage: str) -> tuple[str, ...]:
    """The month partitions a staging directory holds (those with their own index)."""
    idx = os.path.join(stage, "data", "indexdb")
    if not os.path.isdir(idx):
        return ()
    names = [n for n in os.listdir(idx) if _is_month(n) and _is_real_dir(os.path.join(idx, n))]
    return tuple(sorted(names))


def _is_month(name: str) -> bool:
    try:
        return parse_partition_names(name) == (name,)
    except UsageError:
        return False


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _live_has(dst: str, month: str) -> bool:
    return any(os.path.lexists(os.path.join(dst, r, month)) for r in PARTITION_ROOTS)


def _read_record(dst: str) -> tuple[str, ...] | None:
    path = os.path.join(dst, SWAP_RECORD_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            months = json.load(f)["partitions"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadBackupError(f"{path} is unreadable ({e}); remove it only after checking data/ by hand") from e
    return parse_partition_names(",".join(months)) if months else ()


def run_swap(stage: str, dst: str, partitions: str | None = None) -> SwapResult:
    stage, dst = os.path.realpath(stage), os.path.realpath(dst)
    for what, d in (("--stage", stage), ("--dst", dst)):
        if not _is_real_dir(d):
            raise UsageError(f"{what} {d!r} is not a directory; name the staging and the database directories")
    if stage == dst:
        raise UsageError(f"--stage and --dst are the same directory {dst!r}; stage the partitions elsewhere")
    if os.stat(stage).st_dev != os.stat(dst).st_dev:
        raise UsageError(
            f"the staging directory {stage!r} is on another filesystem than {dst!r}, so the swap would copy "
            "instead of rename; restore the partitions into a directory on the database's filesystem"
        )
    live_lock = DirLock(dst, "restore or swap")  # a running VictoriaMetrics holds it: exit 4
    try:
        stage_lock = DirLock(stage, "restore or swap")
        try:
            return _swap_locked(stage, dst, partitions)
        finally:
            stage_lock.close()
    finally:
        live_lock.close()


def _swap_locked(stage: str, dst: str, partitions: str | None) -> SwapResult:
    recorded = _read_record(dst)
    if os.path.exists(os.path.join(stage, RESTORE_IN_PROGRESS_FILE)):
        raise BadBackupError(
            f"the staging directory {stage!r} holds an unfinished restore (restore-in-progress); "
            "rerun that restore to its end first"
        )
    if recorded is None and os.path.exists(os.path.join(dst, RESTORE_IN_PROGRESS_FILE)):
        raise BadBackupError(
            f"{dst!r} holds an unfinished restore (restore-in-progress); rerun that restore to its end first"
        )
    if recorded is not None:
        months = recorded  # an interrupted swap: finish exactly what it started
    else:
        have = staged_months(stage)
        months = parse_partition_names(partitions) if partitions is not None else have
        if not months:
            raise UsageError(f"the staging directory {stage!r} holds no month partition; check --stage")
        missing = [m for m in months if m not in have]
        if missing:
            raise UsageError(
                f"the staging directory {stage!r} has no partition {missing[0]} (it has: "
                f"{', '.join(have) or 'none'}); check --partitions"
            )
        clash = [m for m in months if _live_has(dst, m)]
        if clash:
            raise UsageError(
                f"{dst!r} already has partition {clash[0]} (the database wrote to it after the first step), and "
                "two partitions of one month are not merged; leave it out with --partitions, or restore it "
                "into the stopped database with restore --partitions naming every month it should hold"
            )
        _begin(dst, months)
    moved = 0
    for month in months:
        for root in PARTITION_ROOTS:
            src = os.path.join(stage, root, month)
            there = os.path.join(dst, root, month)
            if not _is_real_dir(src):
                continue  # moved by an interrupted run, or (data/big) never made
            if os.path.lexists(there):
                raise BadBackupError(f"both {src!r} and {there!r} exist; a swap record names {month}, check by hand")
            os.makedirs(os.path.dirname(there), exist_ok=True)
            os.rename(src, there)
            moved += 1
    # every directory an entry left or entered, and data/ where makedirs may have added one
    touched = [os.path.join(top, root) for root in PARTITION_ROOTS for top in (dst, stage)]
    for d in [*touched, os.path.join(dst, "data")]:
        if os.path.isdir(d):
            durable.fsync_dir(d)
    cache = os.path.join(dst, CACHE_DIR)
    cache_removed = os.path.isdir(cache) and not os.path.islink(cache)
    if cache_removed:
        shutil.rmtree(cache)
    for done in (SWAP_RECORD_FILE, RESTORE_IN_PROGRESS_FILE):  # the record first: it implies the marker
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(dst, done))
    durable.fsync_dir(dst)
    return SwapResult(stage, dst, months, moved, cache_removed)


def _begin(dst: str, months: tuple[str, ...]) -> None:
    """The marker VictoriaMetrics honours, then the record; both durable before any move."""
    durable.write_file_atomic(os.path.join(dst, RESTORE_IN_PROGRESS_FILE), b"")
    durable.write_file_atomic(os.path.join(dst, SWAP_RECORD_FILE), json.dumps({"partitions": list(months)}).encode())
