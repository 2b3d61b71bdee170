"""Planner benchmark: plan the restore of 1,000,000 parts into an empty target.

No data: object names are built the way a listing returns them, parsed with
snapferry.parts.parse_listing (what every remote's list_parts does), and given to
snapferry.restorer.planner.plan_restore with an empty TargetListing.
Target: plan <= 10 s and peak RSS <= 1 GiB (run.py runs this in a child
process and reads the peak RSS from wait4).

Run: python -m bench.planner [--parts 1000000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time


def synthetic_names(n: int, seed: int = 1) -> list[tuple[str, int]]:
    """(object name relative to the backup root, actual size) for n parts.

    Mostly five-file small part directories (single-part files) plus a few big
    files of several 1 GiB parts, like a long-lived VictoriaMetrics instance.
    """
    rng = random.Random(seed)
    gib = 1024**3
    out: list[tuple[str, int]] = []
    # 200 big files of 5 parts each
    for i in range(200):
        size = 4 * gib + rng.randrange(gib)
        path = f"data/big/2026_{1 + i % 12:02d}/{rng.getrandbits(64):016X}/values.bin"
        off = 0
        while off < size:
            part = min(gib, size - off)
            out.append((f"{path}/{size:016X}_{off:016X}_{part:016X}", part))
            off += part
    names = ("timestamps.bin", "values.bin", "index.bin", "metaindex.bin", "metadata.json")
    i = 0
    while len(out) < n:
        d = f"data/small/2026_{1 + i % 12:02d}/{rng.getrandbits(64):016X}"
        for fn in names:
            if len(out) >= n:
                break
            size = rng.randrange(1, 8 * 1024 * 1024)
            out.append((f"{d}/{fn}/{size:016X}_{0:016X}_{size:016X}", size))
        i += 1
    return out


def run(n: int) -> dict[str, float | int]:
    from snapferry.local import TargetListing
    from snapferry.parts import parse_listing
    from snapferry.restorer.planner import plan_restore

    t0 = time.perf_counter()
    names = synthetic_names(n)
    t1 = time.perf_counter()
    parts = parse_listing(names)  # what every object-store remote's list_parts does
    assert len(parts) == len(names)
    del names
    gc.collect()
    t2 = time.perf_counter()
    plan = plan_restore(parts, TargetListing({}, []), "/nonexistent-target", preallocate=True)
    t3 = time.perf_counter()
    return {
        "parts": len(parts),
        "files": plan.files_total,
        "download_bytes": plan.download_bytes,
        "names_seconds": round(t1 - t0, 3),
        "parse_seconds": round(t2 - t1, 3),
        "plan_seconds": round(t3 - t2, 3),
        "parse_plus_plan_seconds": round(t3 - t1, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = run(a.parts)
    print(json.dumps(r) if a.json else "\n".join(f"{k}: {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
