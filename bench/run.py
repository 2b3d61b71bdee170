"""snapferry benchmarks against vmbackup/vmrestore 1.79.5 and `cp -a` + `sync`.

Run: .venv/bin/python -m bench.run [--scale GiB] [--seed N] [--runs 5]
         [--scenarios a,b,c,d,e,f,v,planner] [--workdir DIR] [--profile] [--fresh]

Scenarios (ids accepted by --scenarios; a letter selects all its variants):
  a      full restore from fs://                snapferry | vmrestore | cp -a + sync
  b      full restore from s3:// (SeaweedFS)    snapferry | vmrestore
  c      one 4 GiB x scale/3 file from s3:// through bench/proxy.py
         (20 ms per request, 100 MB/s per connection)  snapferry | vmrestore
  d      incremental restore, nothing changed: d-fs, d-s3   snapferry | vmrestore
  e      full backup: e-fs (snapferry | vmbackup | cp -a + sync), e-s3 (snapferry | vmbackup)
  f      incremental backup, nothing changed: f-fs, f-s3   snapferry | vmbackup
  v      verify of the s3:// backup (SeaweedFS): --read-data | snapferry restore (the same bytes
         restored) | provider checksums | --structure-only (issue 11: --read-data at least as fast as
         the restore, structure-only under 1 s)
  g      many small files (--files, default 30,000 in 6,000 part dirs, ~8 KiB each, 0.2 GiB):
         g-fs, g-s3 full restore (snapferry | vmrestore [| cp -a + sync | read only]),
         g-backup-fs, g-backup-s3 full backup (snapferry | vmbackup [| cp -a + sync | read only])
  curve  full fs:// restore at --curve-files (1,000 / 10,000 / 30,000 / 100,000 files), snapferry |
         vmrestore: wall, seconds per 1,000 files, peak RSS (results.md table, curve.png; not default)
  x      encrypted against unencrypted snapferry (issue 23; not default): x-backup-fs, x-restore-fs,
         x-backup-s3, x-restore-s3 (bench/encrypted.py)
  planner  plan_restore of 1,000,000 synthetic parts (bench/planner.py)
  (a and b also run "snapferry --no-checksums": the ratio is the cost of the default check)
  grid-fs, grid-s3, grid-proxy   snapferry tuning grid (not in the default set)

Each scenario runs its tools in alternation (A B C A B C ...): one warm-up round
(not counted; its output is verified against the dataset), then --runs counted
rounds. Before every run the target is removed and the page cache dropped, both
outside the timing. Results merge into bench/results/results.json (same scale
and seed; --fresh starts over) and are rendered to results.md and results.png.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from . import measure
from .encrypted import X_IDS, build_x
from .execute import run_planner, run_scenario
from .machine import git_commit, machine_info, snapferry_defaults
from .manyfiles import CURVE_FILES, G_IDS, build_g, run_curve
from .scenarios import Bench
from .tools import HERE, RESULTS, rmtree, with_baseline

DEFAULT_SCENARIOS = "a,b,c,d,e,f,g,v,planner"
ALL_IDS = ["a", "d-fs", "f-fs", "e-fs", "g-fs", "g-backup-fs", "b", "d-s3", "f-s3", "c", "e-s3", "g-s3",
           "g-backup-s3", "v", "planner", "curve", "grid-fs", "grid-s3", "grid-proxy", *X_IDS]


def expand(spec: str) -> list[str]:
    want: list[str] = []
    for s in spec.split(","):
        s = s.strip()
        if not s:
            continue
        if s in ("d", "e", "f"):
            want += [f"{s}-fs", f"{s}-s3"]
        elif s == "g":
            want += G_IDS
        elif s == "x":
            want += X_IDS
        elif s == "grid":
            want += ["grid-fs", "grid-s3", "grid-proxy"]
        else:
            want.append(s)
    bad = [s for s in want if s not in ALL_IDS]
    if bad:
        raise SystemExit(f"unknown scenarios {bad}; choose from {ALL_IDS} (or d, e, f, g, grid)")
    return [s for s in ALL_IDS if s in want]  # fs first, s3 after, planner, grids last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=3.0, help="dataset size in GiB (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5, help="counted runs per tool (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted, verified runs per tool (default 1)")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help=f"default {DEFAULT_SCENARIOS}")
    ap.add_argument("--workdir", type=Path, default=HERE / "work")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--fresh", action="store_true", help="discard earlier results in results.json")
    ap.add_argument("--profile", action="store_true", help="py-spy profiles of snapferry restores (then exit)")
    ap.add_argument("--profile-scenarios", default="a,b,c", help="restores to profile (a, b, c)")
    ap.add_argument("--grid", action="append",
                    help='a grid variant, e.g. --grid="--concurrency 4" (repeatable; --grid= is the defaults)')
    ap.add_argument("--proxy-delay-ms", type=float, default=20.0)
    ap.add_argument("--proxy-rate-mbps", type=float, default=100.0)
    ap.add_argument("--planner-parts", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=30_000, help="files in scenario g's snapshot (default 30000)")
    ap.add_argument("--curve-files", default=CURVE_FILES, help=f"the cost curve's points (default {CURVE_FILES})")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another snapferry executable (an older commit's venv) run beside this one, "
                    "alternating, in every scenario: its row's ratio is before/after on the same disk "
                    "(compile its tree first: python -m compileall -q SRC)")
    ap.add_argument("--targets", type=Path, default=None,
                    help="where restores and fs:// backups are written (default <workdir>/targets): "
                         "another filesystem, e.g. a journaled ext4 when the workdir's has none")
    ap.add_argument("--keep-targets", action="store_true", help="keep restored trees at the end")
    args = ap.parse_args(argv)
    os.environ["PYTHONPATH"] = str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    # snapferry's bytecode compiled once, as pip does for an install: with PYTHONDONTWRITEBYTECODE
    # set (it is on the project's machine) every run of a module changed since the last compile
    # compiled it again, tens of ms in the nothing-changed scenarios (d, f). A --baseline's tree
    # wants the same (`python -m compileall -q <its src>`).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=True,
                   stdout=subprocess.DEVNULL)

    bench = Bench(args)
    if not bench.can_drop:
        print("[warn] cannot drop the page cache: runs are warm-cache", flush=True)
    if args.profile:
        from .profile import run_profiles

        try:
            run_profiles(bench, args.profile_scenarios.split(","))
        finally:
            bench.close()
        return 0

    from .report import load_results, render, save_results

    args.results.mkdir(parents=True, exist_ok=True)
    store = load_results(args.results, args.scale, args.seed, fresh=args.fresh)
    store["machine"] = machine_info(bench.work, bench.can_drop, bench.targets)
    t_start = time.monotonic()
    try:
        for sid in expand(args.scenarios):
            t0 = time.monotonic()
            try:
                if sid == "planner":
                    res = run_planner(bench)
                elif sid == "curve":
                    res = run_curve(bench)
                else:
                    scn = (build_g(bench, sid) if sid in G_IDS else build_x(bench, sid) if sid in X_IDS
                           else bench.build(sid))
                    if scn is None:
                        continue
                    if args.baseline is not None:
                        scn = with_baseline(scn, args.baseline)
                    res = run_scenario(bench, scn)
                    if not args.keep_targets:
                        rmtree(bench.targets)
                        scn.cleanup()
            except (measure.CommandFailed, RuntimeError, AssertionError) as e:
                print(f"[{sid}] could not run: {e}", flush=True)
                res = {"id": sid, "title": sid, "rows": [], "error": str(e)[:2000],
                       "group": "grid" if sid.startswith("grid") else "curve" if sid == "curve" else "main"}
            res["elapsed"] = time.monotonic() - t0
            old = store["scenarios"].get(sid)
            if old and old.get("rows") and res.get("rows"):  # keep earlier passes: noise is part of the result
                store.setdefault("previous", {}).setdefault(sid, []).append(
                    {k: old.get(k) for k in ("date", "load", "rows")})
            store["scenarios"][sid] = res
            old_settings = store.get("settings", {})
            big = bench._big.total_bytes if bench._big else old_settings.get("bigfile_bytes")
            # only the datasets this invocation used are (re)generated: g and the curve do not need the 3 GiB one
            main_ds = bench._ds
            small = bench._small.get(args.files)
            store["settings"] = {
                "scale": args.scale, "seed": args.seed, "runs": args.runs, "warmup": args.warmup,
                "dataset_bytes": main_ds.total_bytes if main_ds else old_settings.get("dataset_bytes"),
                "dataset_files": main_ds.files if main_ds else old_settings.get("dataset_files"),
                "bigfile_bytes": big, "snapferry_defaults": snapferry_defaults(),
                "small_files": small.files if small else old_settings.get("small_files"),
                "small_bytes": small.total_bytes if small else old_settings.get("small_bytes"),
            }
            save_results(args.results, store)
    finally:
        bench.close()
    store["machine"]["loadavg_end"] = os.getloadavg()
    store["machine"]["bench_minutes"] = round((time.monotonic() - t_start) / 60, 1)
    store.setdefault("invocations", []).append({
        "date": store["machine"]["date"], "scenarios": args.scenarios, "runs": args.runs,
        "grid": args.grid, "minutes": store["machine"]["bench_minutes"],
        "load_start": store["machine"]["loadavg"][0], "load_end": store["machine"]["loadavg_end"][0],
        "commit": git_commit(),
    })
    save_results(args.results, store)
    table = render(args.results, store)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
