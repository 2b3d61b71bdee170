"""Scenario g (many small files: restore and backup, fs:// and s3://) and the cost curve.

The snapshot is datagen's `small` kind: `--files` files (default 30,000) in part
directories of five, lognormal sizes around 8 KiB, 0.2 GiB per 30,000 files.

- g-fs, g-s3: full restore of it (snapferry | vmrestore 1.79.5 [| cp -a + sync | read only]);
- g-backup-fs, g-backup-s3: full backup of it (snapferry | vmbackup 1.79.5 [| cp -a + sync | read only]);
- curve: full restore from fs:// at each of `--curve-files` (default 1,000 / 10,000 / 30,000 /
  100,000 files), snapferry and vmrestore alternating, each point a scenario of its own; the
  result keeps wall time, seconds per 1,000 files and peak RSS per tool and point
  (report.py tables and plots it as curve.png). A tool whose cost per file is constant
  draws a flat line of seconds per 1,000 files.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .execute import run_scenario
from .scenarios import Bench
from .tools import Scenario, rmtree, with_baseline

G_IDS = ["g-fs", "g-s3", "g-backup-fs", "g-backup-s3"]
CURVE_FILES = "1000,10000,30000,100000"


def build_g(bench: Bench, sid: str) -> Scenario:
    ds = bench.small()
    n = f"{ds.files:,} small files"
    if sid == "g-fs":
        src = f"fs://{bench.fs_backup(ds)}"
        return Scenario(sid, f"full restore, {n}, fs://", ds.total_bytes,
                        bench.restore_tools(sid, src, None, None, ds, with_cp=True),
                        notes="many small files: per-file costs (open, write, fsync, rename, mkdir) dominate")
    if sid == "g-s3":
        weed = bench.start_weed()
        src = bench.s3_backup(ds)
        return Scenario(sid, f"full restore, {n}, s3:// (SeaweedFS, loopback)", ds.total_bytes,
                        bench.restore_tools(sid, None, src, weed.endpoint, ds, with_cp=False),
                        watch=[weed.pid], notes="one GET per file: per-request cost dominates; server CPU = weed mini")
    if sid == "g-backup-fs":
        return bench.full_backup_fs(sid, ds, f"full backup, {n}, fs://")
    if sid == "g-backup-s3":
        return bench.full_backup_s3(sid, ds, f"full backup, {n}, s3:// (SeaweedFS, loopback)")
    raise SystemExit(f"unknown scenario {sid!r}")


def curve_points(spec: str) -> list[int]:
    pts = sorted({int(x) for x in spec.split(",") if x.strip()})
    if not pts or pts[0] < 5:
        raise SystemExit(f"--curve-files {spec!r}: give file counts of at least 5, comma-separated")
    return pts


def run_curve(bench: Bench) -> dict[str, object]:
    """Full fs:// restores at each point; rows carry files, seconds per 1,000 files and peak RSS."""
    rows: list[dict[str, object]] = []
    errors: list[str] = []
    for n in curve_points(bench.args.curve_files):
        ds = bench.small(n)
        sid = f"curve-{n}"
        src = f"fs://{bench.fs_backup(ds)}"
        scn = Scenario(sid, f"full restore, {ds.files:,} small files, fs://", ds.total_bytes,
                       bench.restore_tools(sid, src, None, None, ds, with_cp=False))
        if bench.args.baseline is not None:
            scn = with_baseline(scn, bench.args.baseline)
        res = run_scenario(bench, scn)
        if not bench.args.keep_targets:
            rmtree(bench.targets)
        for r in res["rows"]:  # type: ignore[attr-defined]
            r = dict(r)
            r["files"] = ds.files
            r["bytes"] = ds.total_bytes
            if "median" in r:
                r["s_per_kfiles"] = float(r["median"]) * 1000 / ds.files
            else:
                errors.append(f"{r['tool']} at {ds.files} files: {r.get('failed', 'no runs')}")
            rows.append(r)
    out: dict[str, object] = {
        "id": "curve", "title": "cost curve: full restore from fs:// by number of small files", "group": "curve",
        "data_bytes": 0, "rows": rows, "drop_caches": bench.can_drop,
        "notes": "Each point alternates the tools like a scenario; s per 1,000 files = median wall x 1000 / files",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if errors:
        out["failures"] = errors
    return out
