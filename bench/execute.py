"""Running a scenario: its tools in alternation, caches dropped, warm-up verified, medians kept."""

from __future__ import annotations

import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import measure
from .scenarios import Bench
from .tools import HERE, Scenario


def run_scenario(bench: Bench, scn: Scenario) -> dict[str, object]:
    runs, warmup = bench.args.runs, bench.args.warmup
    print(f"\n=== {scn.id}: {scn.title} ({len(scn.tools)} tools, {warmup} warm-up + {runs} runs)", flush=True)
    per_tool: dict[str, list[measure.Measurement]] = {t.name: [] for t in scn.tools}
    failed: dict[str, str] = {}
    busy = {"load_start": os.getloadavg()[0]}
    for rnd in range(warmup + runs):
        counted = rnd >= warmup
        for tool in scn.tools:
            if tool.name in failed:
                continue
            tool.prepare()
            measure.drop_caches()
            log = bench.logs / scn.id / f"{_slug(tool.name)}-{rnd}"
            try:
                m = measure.run(tool.argv(), log, env=tool.env, watch_pids=scn.watch)
            except measure.CommandFailed as e:
                print(f"  {tool.name}: FAILED\n{e}", flush=True)
                failed[tool.name] = str(e).splitlines()[0] + f" (log {log}.err)"
                continue
            sf_secs = _snapferry_seconds(log)
            if sf_secs is not None:
                m.extra["internal_seconds"] = sf_secs
            if not counted and tool.verify is not None:
                try:
                    tool.verify()
                except AssertionError as e:
                    print(f"  {tool.name}: WRONG OUTPUT: {e}", flush=True)
                    failed[tool.name] = f"wrong output: {e}"
                    continue
            tag = "run" if counted else "warm-up"
            print(f"  {tag} {rnd - warmup + 1 if counted else 0}: {tool.name:<28} {m.wall:8.2f}s  "
                  f"cpu {m.cpu:6.2f}s  rss {m.maxrss_kib / 1024:7.1f} MiB  srv {m.server_cpu:5.2f}s  "
                  f"others {m.other_cpu:5.2f}s", flush=True)
            if counted:
                per_tool[tool.name].append(m)
    busy["load_end"] = os.getloadavg()[0]
    rows = []
    for tool in scn.tools:
        ms = per_tool[tool.name]
        row: dict[str, object] = {"tool": tool.name, "kind": tool.kind, "runs": len(ms)}
        if tool.name in failed:
            row["failed"] = failed[tool.name]
        if ms:
            row.update(summary(ms, scn.data_bytes))
        rows.append(row)
    sf = next((r for r in rows if r["tool"] == scn.tools[0].name and "median" in r), None)
    for r in rows:
        if sf is not None and "median" in r and r is not sf:
            r["ratio"] = float(sf["median"]) / float(r["median"])  # type: ignore[arg-type]
    res = {"id": scn.id, "title": scn.title, "data_bytes": scn.data_bytes, "notes": scn.notes,
           "group": scn.group, "rows": rows, "load": busy, "drop_caches": bench.can_drop,
           "date": datetime.now(UTC).isoformat(timespec="seconds")}
    return res

def run_planner(bench: Bench) -> dict[str, object]:
    print("\n=== planner: plan_restore of 1,000,000 parts", flush=True)
    rows = []
    ms = []
    for i in range(max(1, min(bench.args.runs, 3))):
        log = bench.logs / "planner" / f"run-{i}"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE.parent)
        m = measure.run([sys.executable, "-m", "bench.planner", "--json", "--parts", str(bench.args.planner_parts)],
                        log, env=env)
        out = json.loads(log.with_suffix(".out").read_text())
        m.extra.update(out)
        ms.append(m)
        print(f"  run {i + 1}: plan {out['plan_seconds']:.2f}s parse {out['parse_seconds']:.2f}s "
              f"rss {m.maxrss_kib / 1024:.0f} MiB others {m.other_cpu:.1f}s", flush=True)
    plan_s = statistics.median(float(m.extra["plan_seconds"]) for m in ms)  # type: ignore[arg-type]
    parse_s = statistics.median(float(m.extra["parse_seconds"]) for m in ms)  # type: ignore[arg-type]
    row = {"tool": "snapferry plan_restore", "kind": "snapferry", "runs": len(ms),
           **summary(ms, 0), "plan_seconds": plan_s, "parse_seconds": parse_s,
           "parts": ms[0].extra["parts"], "files": ms[0].extra["files"]}
    rows.append(row)
    return {"id": "planner", "title": f"plan a restore of {bench.args.planner_parts:,} parts (empty target)",
            "data_bytes": 0, "group": "main", "rows": rows, "drop_caches": bench.can_drop,
            "notes": "median of the child's own timers; wall includes python startup and name generation",
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-")[:60] or "default"


def _snapferry_seconds(log: Path) -> float | None:
    try:
        d = json.loads(log.with_suffix(".out").read_text())
        return float(d["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def summary(ms: list[measure.Measurement], data_bytes: int) -> dict[str, object]:
    walls = [m.wall for m in ms]
    med = statistics.median(walls)
    out: dict[str, object] = {
        "median": med,
        "min": min(walls),
        "max": max(walls),
        "walls": walls,
        "mbps": data_bytes / med / 1e6 if data_bytes and med > 0 else None,
        "rss_mib": max(m.maxrss_kib for m in ms) / 1024,
        "cpu": statistics.median(m.cpu for m in ms),
        "server_cpu": statistics.median(m.server_cpu for m in ms),
        "other_cpu": statistics.median(m.other_cpu for m in ms),
    }
    internal = [m.extra["internal_seconds"] for m in ms if "internal_seconds" in m.extra]
    if internal:
        out["internal_median"] = statistics.median(float(x) for x in internal)  # type: ignore[arg-type]
    return out
