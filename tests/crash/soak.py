"""Crash soak: many seeded SIGKILL-and-resume cycles of the real CLI, then byte comparison.

    .venv/bin/python -m tests.crash.soak --count 50 [--mode restore-prealloc|restore-inplace|backup|all]
    .venv/bin/python -m tests.crash.soak --count 20 --mode faults

Kill modes use tests/crash/harness.py (fs:// remote): each cycle kills a
throttled run at a random point (once or twice), reruns it, and checks the
result byte for byte, plus what the kill left behind and how much the rerun
moved. It lives with the tests (not in bench/) because it is the crash tests run
many times: bench imports nothing from tests. `faults` runs the 5 %-fault restores and backups of
tests/crash/test_faults.py (through tests/faultproxy.py and SeaweedFS) with
--count runs of each. Prints `mode: N/N identical` per mode; exits 1 on any
failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.crash import harness as h

REPO = Path(__file__).resolve().parents[2]

FAULT_TESTS = {
    "faults-restore": "test_restores_through_5_percent_faults_are_identical",
    "faults-backup": "test_backups_through_5_percent_faults_are_identical",
}


def soak_kills(mode: str, count: int, seed: int, ws: h.Workspace, verbose: bool) -> bool:
    ok = 0
    kills = killed_cycles = resumed_runs = killed_after_done = early = 0
    failures: list[h.CycleResult] = []
    start = time.monotonic()
    for i in range(count):
        r = h.run_cycle(ws, mode, seed + i)
        kills += r.kills
        killed_cycles += r.kills > 0
        early += r.finished_early
        killed_after_done += r.killed_after_done
        resumed_runs += r.resumed_bytes > 0
        if r.ok:
            ok += 1
        else:
            failures.append(r)
        if verbose:
            state = "ok" if r.ok else "FAIL " + "; ".join(r.problems)
            print(f"  {mode} seed {r.seed}: kills {r.kills}, resumed {r.resumed_bytes}, "
                  f"moved {r.moved_bytes}: {state}", flush=True)
        h.cleanup_cycles(ws)
    extra = f"cycles with a kill {killed_cycles}, kills landed {kills}, runs that ended before their kill {early}"
    if mode.startswith("restore"):
        extra += f", reruns that kept bytes {resumed_runs}, kills after the work was done {killed_after_done}"
    print(f"{mode}: {ok}/{count} identical ({extra}; {time.monotonic() - start:.0f} s)", flush=True)
    for r in failures:
        print(f"  FAILED {r.mode} seed {r.seed}: {r.problems}", flush=True)
    return ok == count


def soak_faults(count: int) -> bool:
    all_ok = True
    for mode, test in FAULT_TESTS.items():
        with tempfile.TemporaryDirectory(prefix="soak-faults-") as d:
            report = Path(d) / "report.json"
            env = {**os.environ, "SNAPFERRY_FAULT_RUNS": str(count), "SNAPFERRY_FAULT_REPORT": str(report)}
            start = time.monotonic()
            p = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 f"tests/crash/test_faults.py::{test}"],
                cwd=REPO, env=env, capture_output=True, text=True,
            )
            runs = json.loads(report.read_text()) if report.exists() else []
            ok = sum(1 for r in runs if r["identical"])
            faults = sum(r["faults"] for r in runs)
            print(f"{mode}: {ok}/{count} identical (faults injected {faults}; "
                  f"{time.monotonic() - start:.0f} s)", flush=True)
            if p.returncode != 0 or ok != count:
                all_ok = False
                print(p.stdout[-4000:], p.stderr[-2000:], sep="\n", flush=True)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50, help="cycles per mode")
    ap.add_argument("--mode", default="all", choices=[*h.MODES, "all", "faults"])
    ap.add_argument("--seed", type=int, default=0, help="seed of the first cycle (then +1 each)")
    ap.add_argument("--rate", type=int, default=h.DEFAULT_RATE, help="--max-bytes-per-second of killed runs")
    ap.add_argument("--workdir", help="where to put the data (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per cycle")
    a = ap.parse_args(argv)
    if a.mode == "faults":
        return 0 if soak_faults(a.count) else 1
    modes = list(h.MODES) if a.mode == "all" else [a.mode]
    root = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="snapferry-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        ws = h.Workspace(root / "ws", rate=a.rate)
        results = [soak_kills(m, a.count, a.seed, ws, a.verbose) for m in modes]
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
