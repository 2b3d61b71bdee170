"""Partial restore (--partitions/--since) on real databases: VictoriaMetrics 1.145.0
(an index per month partition) answers over the restored months exactly as after a
full restore and holds no other month; 1.79.5's legacy global indexdb/ is refused
before anything is written."""


from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.partialdb import (
    OLD_MONTHS,
    Backup,
    by_month,
    export_from,
    ingest_and_back_up,
    mid_month_ms,
    months_on_disk,
    restore,
)
from tests.vm import (
    NEW,
    OLD,
    VMServer,
    make_samples,
    merge_samples,
    run_snapferry,
    snapferry_command,
    start_vm,
)


@pytest.fixture(scope="module")
def new_backup(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    return ingest_and_back_up(tmp_path_factory.mktemp("vm145"), NEW, big_months=("2026_02", "2026_03"))



def test_partial_restores_answer_like_a_full_restore(new_backup: Backup, tmp_path: Path) -> None:
    full = tmp_path / "full"
    restore(new_backup, full)
    full_export = by_month(export_from(full, tmp_path))
    assert full_export == by_month(new_backup.samples)  # the baseline itself is right
    assert set(full_export) == set(new_backup.months) and len(new_backup.months) >= 5

    # One partition into a fresh directory: only its bytes are downloaded.
    one = tmp_path / "one"
    res = json.loads(restore(new_backup, one, "--partitions=2026_03").stdout)
    assert [p["name"] for p in res["partitions"]] == ["2026_03"]
    assert res["downloaded_bytes"] == res["backup_bytes"]
    assert res["backup_bytes"] < sum(os.path.getsize(p) for p in full.rglob("*") if p.is_file())
    assert months_on_disk(one) == {"2026_03"}
    got = by_month(export_from(one, tmp_path))
    assert got == {"2026_03": full_export["2026_03"]}

    # Two partitions into a used directory (a full restore): the others are removed.
    used = tmp_path / "used"
    shutil.copytree(full, used, symlinks=True)
    res = json.loads(restore(new_backup, used, "--partitions=2026_01,2026_04").stdout)
    assert res["downloaded_bytes"] < res["backup_bytes"] and res["files_deleted"] > 0  # parts.json are always fetched
    assert months_on_disk(used) == {"2026_01", "2026_04"}
    got = by_month(export_from(used, tmp_path))
    assert got == {m: full_export[m] for m in ("2026_01", "2026_04")}

    # --since into the directory that held one month: the current month only, the old one goes.
    res = json.loads(restore(new_backup, one, "--since=1d").stdout)
    now = dt.datetime.now(dt.UTC).strftime("%Y_%m")
    assert [p["name"] for p in res["partitions"]] == [now]
    got = by_month(export_from(one, tmp_path))
    assert got == {now: full_export[now]}


def test_dry_run_names_partitions_and_bytes(new_backup: Backup, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    out = restore(new_backup, dst, "--partitions=2026_02,2026_03", "--dry-run")
    plan = json.loads(out.stdout)
    names = [p["name"] for p in plan["partitions"]]
    assert names == ["2026_02", "2026_03"] and all(p["bytes"] > 0 for p in plan["partitions"])
    downloads = {f["path"].split("/")[2] for f in plan["download"] if f["path"].startswith("data/")}
    assert downloads == {"2026_02", "2026_03"}
    assert any(f["path"].startswith("metadata/") for f in plan["download"])
    assert not dst.exists()
    text = run_snapferry("restore", f"--src={new_backup.url}", f"--dst={dst}", "--partitions=2026_02", "--dry-run")
    assert "partial restore: 1 partition(s) 2026_02 (" in text.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--partitions=2026-02"], 2, "'2026-02' is not a month partition name; use YYYY_MM"),
        (["--partitions=2025_07"], 2, "has no partition 2025_07 (it has: 2026_01, 2026_02"),
        (["--since=yesterday"], 2, "--since: 'yesterday' is neither a duration"),
        (["--partitions=2026_01", "--since=2026-03-01"], 2, "selects no partition of the backup"),
    ],
)
def test_bad_selections_write_nothing(
    new_backup: Backup, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    fresh = tmp_path / "fresh"
    used = tmp_path / "used"
    used.mkdir()
    (used / "flock.lock").write_bytes(b"")
    before = sorted(os.listdir(used))
    for dst in (fresh, used):
        r = restore(new_backup, dst, *args, check=False)
        assert r.returncode == code, r.stderr
        assert says in r.stderr and "Traceback" not in r.stderr
        assert len([ln for ln in r.stderr.splitlines() if "error" in ln]) == 1, r.stderr
    assert not fresh.exists() and sorted(os.listdir(used)) == before


def test_killed_partial_restore_resumes(new_backup: Backup, tmp_path: Path) -> None:
    """SIGKILL a slowed partial restore at a random point, mid-file, and once February's
    values.bin is whole (one worker: files in path order, so March's big values.bin is
    still to come then); the rerun keeps that file and ends with the exact months."""
    dst = tmp_path / "dst"
    cmd = [*snapferry_command(), "restore", f"--src={new_backup.url}", f"--dst={dst}", "--progress=off",
           "--partitions=2026_02,2026_03", "--max-bytes-per-second=150000", "--concurrency=1"]

    def big_file_done() -> bool:
        return any(dst.glob("data/small/2026_02/*/values.bin"))

    rng = random.Random(int(os.environ.get("SNAPFERRY_TEST_SEED", "11")))
    delay = rng.uniform(0.0, 3.0)  # a random point after the restore's first change
    seen: list[float] = []

    def started() -> bool:
        return (dst / "restore-in-progress").exists()

    def random_point() -> bool:
        if not seen and started():
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() >= seen[0] + delay

    for kill_when in (random_point, started, big_file_done):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda p=proc, cond=kill_when: cond() or p.poll() is not None)  # type: ignore[misc]
        assert proc.poll() is None, f"the restore finished before it could be killed ({kill_when.__name__})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert (dst / "restore-in-progress").exists(), kill_when.__name__
    big = next(dst.glob("data/small/2026_02/*/values.bin")).stat().st_size
    res = json.loads(restore(new_backup, dst, "--partitions=2026_02,2026_03").stdout)
    assert res["kept_bytes"] >= big > 1024 * 1024  # the rerun kept what the killed run finished
    assert not (dst / "restore-in-progress").exists()
    assert months_on_disk(dst) == {"2026_02", "2026_03"}
    got = by_month(export_from(dst, tmp_path))
    want = by_month(new_backup.samples)
    assert got == {m: want[m] for m in ("2026_02", "2026_03")}


def _wait_for(cond: Callable[[], bool]) -> None:
    for _ in range(6000):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("the restore never reached the kill point")


def test_a_directory_of_other_files_is_refused(new_backup: Backup, tmp_path: Path) -> None:
    """A partial restore deletes what the selection lacks, so the wrong-directory guard holds."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    r = restore(new_backup, home, "--partitions=2026_03", check=False)
    assert r.returncode == 2 and "does not look like a VictoriaMetrics data directory" in r.stderr
    assert sorted(os.listdir(home)) == ["notes.txt"]


def test_legacy_backup_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    legacy = ingest_and_back_up(tmp_path / "vm179", OLD)
    assert (Path(legacy.url.removeprefix("fs://")) / "indexdb").is_dir()
    fresh = tmp_path / "fresh"
    r = restore(legacy, fresh, "--partitions=2026_03", check=False)
    assert r.returncode == 3, r.stderr
    assert "legacy global indexdb/" in r.stderr and "cannot be split by partition" in r.stderr
    assert "restore it whole (without --partitions/--since)" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "error" in ln]) == 1 and not fresh.exists()
    # The refusal is about the layout only: the whole backup restores and serves.
    restore(legacy, fresh)
    server: VMServer = start_vm(fresh, tmp_path, version=OLD)
    try:
        assert server.export() == legacy.samples
    finally:
        server.stop()


def test_mixed_layout_restores_each_kind_of_month(tmp_path: Path) -> None:
    """1.79.5 writes January to April, then 1.145.0 opens the same directory (keeping the
    legacy indexdb/ beside data/indexdb/YYYY_MM) and writes April again, May and today.
    A month only the legacy index knows (01), one spanning the upgrade (04) and ones
    written after it (05, now) each restore partially exactly as a full restore serves them."""
    db = tmp_path / "db"
    server = start_vm(db, tmp_path, version=OLD)
    before = [make_samples(seed=i, per_series=100, end_ms=mid_month_ms(m)) for i, m in enumerate(OLD_MONTHS)]
    try:
        for s in before:
            server.ingest(s)
        server.force_flush()
        time.sleep(1.5)
    finally:
        server.stop()
    server = start_vm(db, tmp_path, version=NEW)
    after = [
        make_samples(seed=40, per_series=100, end_ms=mid_month_ms("2026_04") + 7 * 86400_000, metric="upgraded"),
        make_samples(seed=41, per_series=100, end_ms=mid_month_ms("2026_05")),  # old series, new month
        make_samples(seed=42, per_series=50, metric="upgraded"),
    ]
    try:
        for s in after:
            server.ingest(s)
        server.force_flush()
        time.sleep(1.5)
        snap = server.snapshot_create()
        backup = Backup(f"fs://{tmp_path / 'backup'}", merge_samples(*before, *after), ())
        run_snapferry("backup", f"--src={server.snapshot_dir(snap)}", f"--dst={backup.url}")
    finally:
        server.stop()
    root = Path(backup.url.removeprefix("fs://"))
    assert (root / "indexdb").is_dir() and (root / "data/indexdb/2026_05").is_dir()  # really mixed
    want = by_month(backup.samples)
    now = dt.datetime.now(dt.UTC).strftime("%Y_%m")
    for months in (["2026_04"], ["2026_01"], sorted({"2026_05", now})):
        dst = tmp_path / "_".join(months)
        res = json.loads(restore(backup, dst, f"--partitions={','.join(months)}").stdout)
        assert [p["name"] for p in res["partitions"]] == months
        assert (dst / "indexdb").is_dir() and months_on_disk(dst) == set(months)
        assert by_month(export_from(dst, tmp_path)) == {m: want[m] for m in months}
