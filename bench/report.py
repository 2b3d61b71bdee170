"""results.json -> results.md (tables + machine) and results.png (median times per scenario and tool)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .encrypted import X_IDS

NOISE_NOTE = (
    "The machine has 2 cores and a shared, noisy disk; other agents were running builds and tests on the same "
    "cores during the runs. The `others CPU` column is the CPU time every other process on the machine used "
    "while the tool ran: other agents' work, but also the kernel's writeback and ext4 journal threads flushing "
    "the tool's own writes (which is why `cp -a + sync` shows some too); a value near `2 x median` means the "
    "tool had to share both cores. Compare tools within one scenario (they alternate, A B A B ...), not across "
    "machines."
)


PAGE_REPORTING_NOTE = (
    "A second source of noise: this VM's virtio-balloon has free page reporting on "
    "(`/sys/module/page_reporting/parameters/reported_kib` grew past 200 GiB), so pages freed by "
    "`drop_caches` go back to the host and the next first touch of page-cache memory takes a host fault. "
    "That cost lands in the sys time of whichever process writes (or reads) the data: two identical snapferry "
    "s3 restores measured 4.3 s and 10.3 s of sys time. CPU columns are therefore noisy; wall-time ratios "
    "between alternating tools are the robust numbers."
)


def load_results(results_dir: Path, scale: float, seed: int, fresh: bool) -> dict[str, Any]:
    path = results_dir / "results.json"
    if path.exists() and not fresh:
        data: dict[str, Any] = json.loads(path.read_text())
        s = data.get("settings", {})
        if s.get("scale") == scale and s.get("seed") == seed:
            data.setdefault("scenarios", {})
            return data
    return {"scenarios": {}}


def save_results(results_dir: Path, data: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    tmp = results_dir / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(results_dir / "results.json")


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


# Every scenario id bench.run can store: one missing here is measured but never rendered
# (the x scenarios' table came out empty).
X_ORDER = X_IDS
ORDER = ["a", "b", "c", "d-fs", "d-s3", "e-fs", "e-s3", "f-fs", "f-s3", "g-fs", "g-s3", "g-backup-fs",
         "g-backup-s3", "v", *X_ORDER, "planner", "grid-fs", "grid-s3", "grid-proxy"]


def x_table(data: dict[str, Any]) -> str:
    """Scenario x: the encrypted row against the unencrypted one of the same run (issue 23's
    targets: at most 1.10x the time, 1.5x the CPU). Empty when no x scenario was measured."""
    lines = ["| scenario | unencrypted: median s, CPU s, peak RSS MiB | encrypted: median s, CPU s, peak RSS MiB "
             "| time ratio | CPU ratio |", "|" + "---|" * 5]
    for sid in X_ORDER:
        res = data["scenarios"].get(sid)
        rows = [r for r in (res or {}).get("rows", []) if "median" in r]
        if len(rows) < 2:
            continue
        plain, enc = rows[0], rows[1]
        lines.append(
            f"| **{sid}** {res['title']} | {plain['median']:.2f}, {plain['cpu']:.2f}, {plain['rss_mib']:.0f} | "
            f"{enc['median']:.2f}, {enc['cpu']:.2f}, {enc['rss_mib']:.0f} | "
            f"{enc['median'] / plain['median']:.2f}x | {enc['cpu'] / plain['cpu']:.2f}x |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def table(data: dict[str, Any], group: str) -> str:
    head = ("| scenario | tool | runs | median s | min-max s | MB/s | snapferry/peer | peak RSS MiB | CPU s | "
            "server CPU s | others CPU s |")
    lines = [head, "|" + "---|" * 11]
    for sid in ORDER:
        res = data["scenarios"].get(sid)
        if not res or res.get("group", "main") != group:
            continue
        title = f"**{sid}** {res['title']}"
        if res.get("error"):
            lines.append(f"| {title} | - | 0 | could not run: {res['error'].splitlines()[0][:150]} |||||||| ")
            continue
        for i, r in enumerate(res["rows"]):
            name = r["tool"]
            if "failed" in r and "median" not in r:
                lines.append(f"| {title if i == 0 else ''} | {name} | 0 | FAILED: {r['failed'][:150]} |||||||| ")
                continue
            ratio = _f(r.get("ratio"), "{:.2f}x") if i > 0 else ""
            med = r["median"]
            extra = ""
            if sid == "planner":
                extra = f" (plan {r['plan_seconds']:.2f} s + parse {r['parse_seconds']:.2f} s)"
            elif r.get("internal_median") is not None and res.get("data_bytes", 0) == 0:
                extra = f" ({r['internal_median']:.2f} in-process)"
            lines.append(
                f"| {title if i == 0 else ''} | {name} | {r['runs']} | {med:.2f}{extra} | "
                f"{r['min']:.2f}-{r['max']:.2f} | {_f(r.get('mbps'), '{:.0f}')} | {ratio} | {r['rss_mib']:.0f} | "
                f"{r['cpu']:.2f} | {r['server_cpu']:.2f} | {r['other_cpu']:.2f} |"
            )
    return "\n".join(lines)


def render(results_dir: Path, data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    s = data.get("settings", {})
    main = table(data, "main")
    grid = table(data, "grid")
    parts = [
        "# snapferry benchmarks",
        "",
        f"Generated by `.venv/bin/python -m bench.run` on {m.get('date', '?')} (UTC).",
        "",
        "## Machine",
        "",
        f"- nproc: {m.get('nproc')} ({m.get('cpu')}), RAM: {m.get('ram_gib')} GiB, kernel {m.get('kernel')}",
        f"- workdir: {m.get('workdir')} on {m.get('filesystem')} ({m.get('device')}, journal: "
        f"{m.get('journal', '?')}); targets (restores, fs:// backups): {m.get('targets', 'in the workdir')} on "
        f"{m.get('targets_filesystem', m.get('filesystem'))} "
        f"(journal: {m.get('targets_journal', m.get('journal', '?'))})",
        f"- python {m.get('python')}, snapferry {m.get('snapferry')}, {m.get('vmrestore')}, "
        f"SeaweedFS `{m.get('weed')}`",
        f"- page cache dropped before every run: {'yes' if m.get('drop_caches') else 'NO (warm cache)'}",
        "",
        NOISE_NOTE,
        "",
        PAGE_REPORTING_NOTE,
        "",
        "Invocations of `bench.run` whose results are in this file:",
        "",
        *[f"- {i['date']}: `--scenarios {i['scenarios']} --runs {i['runs']}`"
          + (f" {' '.join(repr('--grid=' + g) for g in i['grid'])}" if i.get("grid") else "")
          + f", {_num(i.get('minutes'))} min, load average {_num(i.get('load_start'))} -> "
          f"{_num(i.get('load_end'))}, snapferry at {i.get('commit', '?')}"
          for i in data.get("invocations", [])],
        "",
        "## Settings",
        "",
        f"- dataset: scale {s.get('scale')} GiB, seed {s.get('seed')}: {s.get('dataset_files')} files, "
        f"{(s.get('dataset_bytes') or 0) / 1e9:.2f} GB (two values.bin > 1 GiB at scale 3, ~400 small part "
        "dirs, indexdb), incompressible bytes",
        f"- scenario c file: {(s.get('bigfile_bytes') or 0) / 1e9:.2f} GB (4 GiB x scale/3)",
        f"- scenario g snapshot: {s.get('small_files') or 0:,} files in part dirs of five, lognormal sizes "
        f"around 8 KiB, {(s.get('small_bytes') or 0) / 1e9:.2f} GB",
        f"- {s.get('warmup')} verified warm-up run + {s.get('runs')} counted runs per tool, tools alternating; "
        "targets removed and caches dropped outside the timing",
        "- every tool is a child process (snapferry through its CLI, so startup counts); wall = fork to reap; "
        "CPU = user+sys from wait4 of the child; peak RSS from GNU time around the tool",
        f"- defaults everywhere: snapferry {s.get('snapferry_defaults', '--concurrency 8')} (as of the last "
        "invocation; see the git log for what changed between passes); vmbackup/vmrestore -concurrency 10; "
        "`cp -a` + `sync` is the floor for a local copy",
        "- snapferry/peer < 1 means snapferry is faster; MB/s = dataset bytes / median wall (10^6 B)",
        "- server CPU: weed mini (+ proxy in c) CPU during the run; not included in CPU s",
        "",
        "## Results",
        "",
        main,
        "",
    ]
    enc = x_table(data)
    if enc:
        parts += ["### Cost of encryption (scenario x)", "", enc, ""]
    notes = []
    for sid in ORDER:
        res = data["scenarios"].get(sid)
        if not res or res.get("group", "main") != "main":
            continue
        load = res.get("load") or {}
        when = f"measured {res.get('date', '?')}"
        if load:
            when += f", load average {load.get('load_start', 0):.1f} -> {load.get('load_end', 0):.1f}"
        if res.get("elapsed"):
            when += f", {res['elapsed'] / 60:.1f} min"
        notes.append(f"- **{sid}**: {when}" + (f"; {res['notes']}" if res.get("notes") else ""))
    if notes:
        parts += ["Notes:", "", *notes, ""]
    prev = data.get("previous") or {}
    if prev:
        parts += ["## Repeated scenarios", "",
                  "Earlier passes of scenarios that were measured again (same settings); the spread between "
                  "passes is the machine's noise, not a change in the tools.", "",
                  "| scenario | pass | measured | tool | median s | min-max s | snapferry/peer | CPU s |",
                  "|---|---|---|---|---|---|---|---|"]
        for sid in ORDER:
            passes = [*prev.get(sid, []), data["scenarios"].get(sid)]
            if len(passes) < 2:
                continue
            for i, ps in enumerate(passes):
                for r in ps.get("rows", []):
                    if "median" not in r:
                        continue
                    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else ""
                    parts.append(f"| {sid} | {i + 1} | {ps.get('date', '?')} | {r['tool']} | {r['median']:.2f} | "
                                 f"{r['min']:.2f}-{r['max']:.2f} | {ratio} | {r['cpu']:.2f} |")
        parts.append("")
    if len(grid.splitlines()) > 2:
        parts += ["## snapferry tuning grid", "", "Only snapferry, one flag changed at a time from the defaults "
                  "(`--writers`/`--block-size` through bench/sfrun.py, which sets Tuning fields the CLI lacks). "
                  "Here the ratio column is defaults / variant: above 1 the variant is faster.", "", grid, ""]
    curve = data["scenarios"].get("curve")
    if curve and curve.get("rows"):
        parts += ["## Cost curve: many small files", "",
                  "Full restore from fs:// of the scenario g snapshot at several sizes (each point its own "
                  "alternating scenario). A flat `s per 1,000 files` means the cost per file does not grow with "
                  f"the count. {curve.get('notes', '')}; measured {curve.get('date', '?')}.", "",
                  curve_table(curve), "", "![seconds per 1,000 files and peak RSS](curve.png)", ""]
    parts += ["![median wall time per scenario and tool](results.png)", ""]
    md = "\n".join(parts)
    (results_dir / "results.md").write_text(md)
    try:
        plot(results_dir / "results.png", data)
        if curve and curve.get("rows"):
            plot_curve(results_dir / "curve.png", curve)
    except Exception as e:  # a plot is not worth failing the run over
        print(f"[report] plot failed: {e}")
    return main + ("\n\n" + enc if enc else "") + ("\n\n" + grid if len(grid.splitlines()) > 2 else "")


def curve_table(curve: dict[str, Any]) -> str:
    lines = ["| files | MB | tool | runs | median s | min-max s | s per 1,000 files | peak RSS MiB | CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(curve["rows"], key=lambda r: (r["files"], r.get("kind") != "snapferry")):
        if "median" not in r:
            lines.append(f"| {r['files']:,} | {r['bytes'] / 1e6:.0f} | {r['tool']} | 0 | FAILED: "
                         f"{str(r.get('failed', ''))[:120]} ||||| ")
            continue
        lines.append(f"| {r['files']:,} | {r['bytes'] / 1e6:.0f} | {r['tool']} | {r['runs']} | {r['median']:.2f} | "
                     f"{r['min']:.2f}-{r['max']:.2f} | {r['s_per_kfiles']:.3f} | {r['rss_mib']:.0f} | "
                     f"{r['cpu']:.2f} |")
    return "\n".join(lines)


def plot_curve(path: Path, curve: dict[str, Any]) -> None:
    """Seconds per 1,000 files and peak RSS against the number of files (log x), one line per tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    tools = dict.fromkeys(r["tool"] for r in curve["rows"])
    for tool in tools:
        rs = sorted((r for r in curve["rows"] if r["tool"] == tool and "median" in r), key=lambda r: r["files"])
        if not rs:
            continue
        xs = [r["files"] for r in rs]
        ax1.plot(xs, [r["s_per_kfiles"] for r in rs], marker="o", label=tool)
        ax2.plot(xs, [r["rss_mib"] for r in rs], marker="o", label=tool)
    for ax, ylabel in ((ax1, "median wall s per 1,000 files"), (ax2, "peak RSS MiB")):
        ax.set_xscale("log")
        ax.set_xlabel("files restored (fs://)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("many small files: restore cost by number of files (lower is better; flat = linear)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _num(x: Any) -> str:
    return "?" if x is None else f"{x:.1f}"


def _loadavg(x: Any) -> str:
    return "?" if not x else f"{x[0]:.1f}"


def plot(path: Path, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scns = [(sid, data["scenarios"][sid]) for sid in ORDER
            if sid in data["scenarios"] and data["scenarios"][sid].get("rows")
            and any("median" in r for r in data["scenarios"][sid]["rows"])]
    if not scns:
        return
    cols = 4
    rows = (len(scns) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = {"snapferry": "#1f77b4", "peer": "#ff7f0e", "floor": "#7f7f7f", "baseline": "#9ecae1"}
    for ax, (sid, res) in zip(axes.flat, scns, strict=False):
        rs = [r for r in res["rows"] if "median" in r]
        names = [r["tool"].replace(" 1.79.5", "").replace("--", "") for r in rs]
        meds = [r["median"] for r in rs]
        err = [[r["median"] - r["min"] for r in rs], [r["max"] - r["median"] for r in rs]]
        cs = [colors.get(r.get("kind", "snapferry"), "#1f77b4") for r in rs]
        if res.get("group") == "grid":
            cs = ["#1f77b4" if i == 0 else "#9ecae1" for i in range(len(rs))]
        ax.bar(range(len(rs)), meds, yerr=err, color=cs, capsize=3)
        ax.set_xticks(range(len(rs)))
        ax.set_xticklabels(names, rotation=30 if len(rs) <= 3 else 60, ha="right", fontsize=7)
        ax.set_ylabel("median wall s")
        title = f"{sid}: {res['title']}"
        ax.set_title(title if len(title) < 48 else title[:46] + "…", fontsize=8)
        for i, v in enumerate(meds):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(scns):]:
        ax.axis("off")
    fig.suptitle("snapferry vs vmrestore/vmbackup 1.79.5 vs cp -a (lower is better; bars = median, whiskers = "
                 "min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    d = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    data = json.loads((d / "results.json").read_text())
    print(render(d, data))
