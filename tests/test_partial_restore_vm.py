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
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import snapferry
from tests.dropin.helpers import run_script
from tests.servers import S3Server
from tests.vm import (
    NEW,
    OLD,
    Samples,
    VMServer,
    free_port,
    make_samples,
    merge_samples,
    require_binary,
    run_snapferry,
    snapferry_command,
    start_vm,
)

OLD_MONTHS = ("2026_01", "2026_02", "2026_03", "2026_04")


def month_of(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y_%m")


def by_month(samples: Samples) -> dict[str, Samples]:
    out: dict[str, Samples] = {}
    for key, points in samples.items():
        for ts, v in points:
            out.setdefault(month_of(ts), {}).setdefault(key, []).append((ts, v))
    return out


def mid_month_ms(name: str) -> int:
    return int(dt.datetime(int(name[:4]), int(name[5:]), 15, tzinfo=dt.UTC).timestamp() * 1000)


@dataclass
class Backup:
    url: str
    samples: Samples  # everything ingested
    months: tuple[str, ...]  # every partition the backup holds


def ingest_and_back_up(base: Path, version: str, *, big_months: tuple[str, ...] = ()) -> Backup:
    """A real victoria-metrics of `version` with samples in four old months (backfilled)
    and the current one, snapshotted and backed up by snapferry to fs://."""
    base.mkdir(parents=True, exist_ok=True)
    server = start_vm(base / "db", base, version=version)
    try:
        ingested: list[Samples] = []
        for i, m in enumerate(OLD_MONTHS):
            per = 20_000 if m in big_months else 200  # big: values.bin over 1 MiB, kept by a rerun
            series = 30 if m in big_months else 4
            ingested.append(make_samples(seed=i + 1, series=series, per_series=per, end_ms=mid_month_ms(m)))
        ingested.append(make_samples(seed=99, per_series=50))
        for s in ingested:
            server.ingest(s)
        server.force_flush()
        time.sleep(1.5)  # the ingested rows reach parts before the snapshot
        snap = server.snapshot_create()
        url = f"fs://{base / 'backup'}"
        run_snapferry("backup", f"--src={server.snapshot_dir(snap)}", f"--dst={url}")
    finally:
        server.stop()
    samples = merge_samples(*ingested)
    return Backup(url, samples, tuple(sorted(by_month(samples))))


@pytest.fixture(scope="module")
def new_backup(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    return ingest_and_back_up(tmp_path_factory.mktemp("vm145"), NEW, big_months=("2026_02", "2026_03"))


def restore(backup: Backup, dst: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_snapferry("restore", f"--src={backup.url}", f"--dst={dst}", "--json", "--progress=off", *extra,
                         check=check)


def export_from(dst: Path, log_dir: Path) -> Samples:
    server = start_vm(dst, log_dir, version=NEW)
    try:
        return server.export()
    finally:
        server.stop()


def months_on_disk(dst: Path) -> set[str]:
    found: set[str] = set()
    for sub in ("small", "big", "indexdb"):
        d = dst / "data" / sub
        if d.is_dir():
            found.update(n for n in os.listdir(d) if len(n) == 7 and n[4] == "_" and any((d / n).iterdir()))
    return found


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


def query_range_points(server: VMServer, month: str) -> int:
    """How many points /api/v1/query_range returns over the middle days of `month`
    (a query the rollup-result cache keeps the answer of)."""
    mid = mid_month_ms(month) // 1000
    q = urllib.parse.urlencode({"query": "snapferry_test", "start": mid - 3 * 86400, "end": mid + 86400, "step": "1h"})
    data = server.get_json(f"/api/v1/query_range?{q}")
    result = data["data"]["result"]  # type: ignore[index]
    return sum(len(r["values"]) for r in result)


def test_two_step_restore_with_a_short_stop(new_backup: Backup, tmp_path: Path) -> None:
    """Step 1: the newest month into the live directory, the database serves it and takes
    new samples (also into an old month, 2026_03, and a new one). Step 2: the rest into a
    staging directory meanwhile, then a stop, `partitions-swap`, a start: every month is
    served, the new samples kept; the month written meanwhile is refused, never merged."""
    now = dt.datetime.now(dt.UTC).strftime("%Y_%m")
    live, stage = tmp_path / "live", tmp_path / "stage"
    restore(new_backup, live, f"--partitions={now}")
    server = start_vm(live, tmp_path, version=NEW)
    meanwhile = merge_samples(
        make_samples(seed=500, per_series=30),  # the current month
        make_samples(seed=501, per_series=30, end_ms=mid_month_ms("2026_03") + 3600_000, metric="written_meanwhile"),
        make_samples(seed=502, per_series=30, end_ms=mid_month_ms("2026_06")),
    )
    try:
        server.ingest(meanwhile)
        server.force_flush()
        assert query_range_points(server, "2026_02") == 0  # cached: February is not there yet
        rest = [m for m in new_backup.months if m != now]
        res = json.loads(restore(new_backup, stage, f"--partitions={','.join(rest)}").stdout)
        assert [p["name"] for p in res["partitions"]] == rest
        locked = run_snapferry("partitions-swap", f"--stage={stage}", f"--dst={live}", check=False)
        assert locked.returncode == 4 and "locked by another process" in locked.stderr
        time.sleep(1.5)
    finally:
        server.stop()

    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "cache" not in p.parts)
    refused = run_snapferry("partitions-swap", f"--stage={stage}", f"--dst={live}", check=False)
    assert refused.returncode == 2 and "already has partition 2026_03" in refused.stderr
    assert "are not merged" in refused.stderr and "Traceback" not in refused.stderr
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "cache" not in p.parts)
    assert after == before  # nothing moved, no marker left

    keep = [m for m in rest if m != "2026_03"]
    out = json.loads(run_snapferry("partitions-swap", f"--stage={stage}", f"--dst={live}",
                                   f"--partitions={','.join(keep)}", "--json").stdout)
    assert out["partitions"] == keep and out["cache_removed"] is True
    assert not (live / "restore-in-progress").exists()

    server = start_vm(live, tmp_path, version=NEW)
    try:
        got = by_month(server.export())
        assert query_range_points(server, "2026_02") > 0  # no stale cached answer
    finally:
        server.stop()
    backup, new = by_month(new_backup.samples), by_month(meanwhile)
    for m in keep:
        assert got[m] == backup[m]
    assert got[now] == merge_samples(backup[now], new[now])
    assert got["2026_03"] == new["2026_03"]  # the month written meanwhile: only what was written
    assert got["2026_06"] == new["2026_06"]
    assert set(got) == set(keep) | {now, "2026_03", "2026_06"}


def test_an_interrupted_swap_finishes_on_rerun(new_backup: Backup, tmp_path: Path) -> None:
    """A crash after some renames: VictoriaMetrics refuses to start on the marker, and a
    rerun finishes the months its record names."""
    live, stage = tmp_path / "live", tmp_path / "stage"
    restore(new_backup, live, "--partitions=2026_04")
    restore(new_backup, stage, "--partitions=2026_01,2026_02")
    # What a run killed after its first rename leaves: the marker, the record, one directory moved.
    (live / "restore-in-progress").write_bytes(b"")
    (live / "snapferry-partitions-swap.json").write_text(json.dumps({"partitions": ["2026_01", "2026_02"]}))
    os.rename(stage / "data/small/2026_01", live / "data/small/2026_01")
    r = subprocess.run([require_binary("victoria-metrics", NEW), f"-storageDataPath={live}",
                        "-httpListenAddr=127.0.0.1:0"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0 and "incomplete vmrestore run" in r.stderr + r.stdout
    out = snapferry.partitions_swap(str(stage), str(live)).to_dict()  # the Python API
    assert out["partitions"] == ["2026_01", "2026_02"]
    assert months_on_disk(live) == {"2026_01", "2026_02", "2026_04"} and months_on_disk(stage) == set()
    got = by_month(export_from(live, tmp_path))
    want = by_month(new_backup.samples)
    assert got == {m: want[m] for m in ("2026_01", "2026_02", "2026_04")}


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


def test_info_lists_partitions_with_sizes(new_backup: Backup) -> None:
    info = json.loads(run_snapferry("info", f"--src={new_backup.url}", "--json").stdout)["backup"]
    assert info["layout"] == "per-partition"
    assert [p["name"] for p in info["partitions"]] == list(new_backup.months)
    root = Path(new_backup.url.removeprefix("fs://"))
    for p in info["partitions"]:  # the bytes of its three directories in the backup
        dirs = [root / "data" / r / p["name"] for r in ("small", "big", "indexdb")]
        on_disk = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
        assert p["bytes"] == on_disk
    text = run_snapferry("info", f"--src={new_backup.url}").stdout
    assert len(text.splitlines()) == 1  # one line per backup, the months on it
    assert "; 5 month partition(s) (per-partition index): 2026_01 " in text and ", 2026_02 " in text


def test_verify_checks_only_the_named_partitions(new_backup: Backup, tmp_path: Path) -> None:
    copy = tmp_path / "backup"
    shutil.copytree(Path(new_backup.url.removeprefix("fs://")), copy)
    victim = next((copy / "data/small/2026_01").rglob("values.bin/*"))
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF  # same size: only reading the data finds it
    victim.write_bytes(bytes(data))
    url = f"fs://{copy}"
    clean = run_snapferry("verify", f"--src={url}", "--read-data", "--partitions=2026_02,2026_03", check=False)
    assert clean.returncode == 0, clean.stderr
    for args in ([], ["--partitions=2026_01"], ["--since=2025-12-20"]):
        bad = run_snapferry("verify", f"--src={url}", "--read-data", *args, check=False)
        assert bad.returncode == 3 and "2026_01" in bad.stderr, bad.stderr
    r = run_snapferry("verify", f"--src={url}", "--partitions=1999_01", check=False)
    assert r.returncode == 2 and "has no partition 1999_01" in r.stderr


def test_dropin_vmrestore_takes_the_flags_of_pr_11186(new_backup: Backup, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    run_script("vmrestore", [f"-src={new_backup.url}", f"-storageDataPath={dst}",
                             "-restorePartitions=2026_02,2026_03,2026_04", "-restoreSince=2026-03-10",
                             f"-httpListenAddr=127.0.0.1:{free_port()}"])
    assert months_on_disk(dst) == {"2026_03", "2026_04"}
    bad = run_script("vmrestore", [f"-src={new_backup.url}", f"-storageDataPath={dst}", "-restorePartitions=2026-03",
                                   f"-httpListenAddr=127.0.0.1:{free_port()}"], check=False)
    assert bad.returncode == 2 and "is not a month partition name" in bad.stderr
    assert months_on_disk(dst) == {"2026_03", "2026_04"}


def test_a_restore_mark_names_partitions_for_the_init_container(new_backup: Backup, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bad = run_snapferry("manager", "restore", "create", new_backup.url, f"--storage-data-path={data}",
                        "--partitions=2026-3", check=False)
    assert bad.returncode == 2 and "is not a month partition name" in bad.stderr
    assert not (data / "backup_restore.ignore").exists()
    run_snapferry("manager", "restore", "create", new_backup.url, f"--storage-data-path={data}",
                  "--partitions=2026_03,2026_04", "--since=2026-04-01")
    got = json.loads(run_snapferry("manager", "restore", "get", f"--storage-data-path={data}").stdout)
    assert got == {"backup": new_backup.url, "partitions": "2026_03,2026_04", "since": "2026-04-01"}
    res = json.loads(run_snapferry("manager", "restore", f"--storage-data-path={data}", "--json",
                                   "--progress=off").stdout)
    assert [p["name"] for p in res["partitions"]] == ["2026_04"]
    assert months_on_disk(data) == {"2026_04"} and not (data / "backup_restore.ignore").exists()
    assert by_month(export_from(data, tmp_path)) == {"2026_04": by_month(new_backup.samples)["2026_04"]}


def test_partial_restore_from_s3_downloads_only_the_selection(
    new_backup: Backup, moto_server: S3Server, tmp_path: Path
) -> None:
    """The selection is made on the listing, so an object store works as fs:// does: the
    bytes downloaded are the selected months' and the rest of the layout's, no more."""
    url, opts = moto_server.new_remote()
    snapferry.copy(new_backup.url, url, remote_options=opts, progress="off")
    dst = tmp_path / "dst"
    res = snapferry.restore(url, str(dst), partitions="2026_04", remote_options=opts, progress="off")
    info = snapferry.info(url, remote_options=opts).backup
    assert info is not None
    month = next(p for p in info.partitions if p.name == "2026_04")
    outside = info.backup_bytes - sum(p.bytes for p in info.partitions)
    assert res.downloaded_bytes == res.backup_bytes == month.bytes + outside < info.backup_bytes
    assert months_on_disk(dst) == {"2026_04"}
    assert by_month(export_from(dst, tmp_path)) == {"2026_04": by_month(new_backup.samples)["2026_04"]}


def test_partial_restore_of_an_encrypted_backup(new_backup: Backup, tmp_path: Path) -> None:
    """Object names stay plain in an encrypted backup (docs/encryption.md), so months are
    selected as in any backup and their bytes decrypted as in a full restore."""
    key = tmp_path / "backup.key"
    run_snapferry("keygen", str(key))
    tree = tmp_path / "tree"
    restore(new_backup, tree)  # a database directory to back up, the backup's files exactly
    enc = f"fs://{tmp_path / 'enc'}"
    run_snapferry("backup", f"--src={tree}", f"--dst={enc}", "--encrypt", f"--encryption-key-file={key}", "--force")
    dst = tmp_path / "dst"
    no_key = run_snapferry("restore", f"--src={enc}", f"--dst={dst}", "--partitions=2026_01", check=False)
    assert no_key.returncode == 2 and not dst.exists()
    res = json.loads(run_snapferry("restore", f"--src={enc}", f"--dst={dst}", "--partitions=2026_01", "--json",
                                   f"--encryption-key-file={key}").stdout)
    assert [p["name"] for p in res["partitions"]] == ["2026_01"]
    assert months_on_disk(dst) == {"2026_01"}
    assert by_month(export_from(dst, tmp_path)) == {"2026_01": by_month(new_backup.samples)["2026_01"]}
