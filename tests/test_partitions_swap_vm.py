"""partitions-swap, the second step of a partial restore, on a real VictoriaMetrics 1.145.0:
the rest of the months restored into a staging directory while the database serves the
newest, then a short stop and renames (docs/partial-restore.md)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import snapferry
from tests.partialdb import (
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
    VMServer,
    make_samples,
    merge_samples,
    require_binary,
    run_snapferry,
    start_vm,
)


@pytest.fixture(scope="module")
def new_backup(tmp_path_factory: pytest.TempPathFactory) -> Backup:
    return ingest_and_back_up(tmp_path_factory.mktemp("vm145"), NEW)



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
