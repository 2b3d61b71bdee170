"""py-spy profiles of snapferry restores, and the top functions from them.

`python -m bench.run --profile [--profile-scenarios a,b,c]` restores the bench
dataset with the snapferry CLI under `py-spy record --format raw --threads`
(collapsed stacks, one line per stack; speedscope.app opens these files too)
and prints the top functions by own samples (the leaf frame) and by total
samples (anywhere on the stack), plus the split by thread kind. Files go to
bench/results/profile-<scenario>[-<label>].txt.

`python -m bench.profile FILE [N]` prints the top N of an existing raw profile.
Set PROFILE_IDLE=1 to include idle (waiting) samples: shows where threads wait.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from . import measure

if TYPE_CHECKING:
    from .scenarios import Bench

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_THREAD = re.compile(r"^(?:process \d+:\")?thread \((?:0x[0-9A-Fa-f]+|\d+)\)(?::\s*(?P<name>.*))?$")


def _short(frame: str, with_line: bool) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    f = m.group("file")
    for marker in ("/site-packages/", "/src/", "/lib/python3."):
        if marker in f:
            f = f.split(marker, 1)[1]
            if marker == "/lib/python3.":
                f = "py3." + f
            break
    line = m.group("line")
    return f"{m.group('func')} ({f}{':' + line if with_line and line else ''})"


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, n = raw.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        stacks.append((stack.split(";"), int(n)))
    return stacks


def summarize(path: Path, top: int = 15) -> str:
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    own_line: Counter[str] = Counter()
    own_func: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    for frames, n in stacks:
        tname = ""
        m = _THREAD.match(frames[0]) if frames else None
        if m:
            tname = m.group("name") or ""
            frames = frames[1:]
        names = [f for f in frames if "(" in f]
        kind = _thread_kind(tname, names)
        by_thread[kind] += n
        if not names:
            continue
        own_line[_short(names[-1], True)] += n
        own_func[_short(names[-1], False)] += n
        for fn in {_short(f, False) for f in names}:
            incl[fn] += n
    out = [f"{path.name}: {total} samples"]
    out.append("  by thread: " + ", ".join(f"{k} {v * 100 / total:.0f}%" for k, v in by_thread.most_common()))
    out.append(f"  top {top} by own samples (leaf line):")
    out += [f"    {v * 100 / total:5.1f}%  {k}" for k, v in own_line.most_common(top)]
    out.append(f"  top {top} by own samples (function):")
    out += [f"    {v * 100 / total:5.1f}%  {k}" for k, v in own_func.most_common(top)]
    out.append(f"  top {top} by total samples (function anywhere on the stack):")
    out += [f"    {v * 100 / total:5.1f}%  {k}" for k, v in incl.most_common(top)]
    return "\n".join(out)


def _thread_kind(tname: str, frames: list[str]) -> str:
    """Group threads by role: snapferry names its threads download-N, write-N, finish-N."""
    name = tname.rstrip("0123456789").rstrip("-_ ")
    if name:
        return {"download": "download workers", "write": "writers", "finish": "finishers",
                "MainThread": "main"}.get(name, name)
    joined = ";".join(frames)
    if "_worker (" in joined and "downloader" in joined:
        return "download workers"
    if "_writer (" in joined and "downloader" in joined:
        return "writers"
    if "main (" in joined or "<module>" in joined:
        return "main"
    return "other"


def run_profiles(bench: Bench, which: list[str]) -> None:
    from .tools import RESULTS, SNAPFERRY, rmtree

    pyspy = Path(sys.executable).parent / "py-spy"
    if not pyspy.exists():
        pyspy = Path(shutil.which("py-spy") or "py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    idle = ["--idle"] if os.environ.get("PROFILE_IDLE") else []
    extra_flags = os.environ.get("PROFILE_FLAGS", "").split()
    label = os.environ.get("PROFILE_LABEL", "")
    for sid in which:
        if sid == "a":
            src, endpoint, ds = f"fs://{bench.fs_backup()}", None, bench.ds
        elif sid == "b":
            weed = bench.start_weed()
            src, endpoint, ds = bench.s3_backup(bench.ds), weed.endpoint, bench.ds
        elif sid == "c":
            bench.start_weed()
            src = bench.s3_backup(bench.big)
            endpoint, ds = bench.start_proxy().endpoint, bench.big
        else:
            raise SystemExit(f"--profile-scenarios: {sid!r} is not a, b or c")
        target = bench.targets / f"profile-{sid}"
        rmtree(target)
        measure.drop_caches()
        out = RESULTS / f"profile-{sid}{'-' + label if label else ''}{'-idle' if idle else ''}.txt"
        argv = [str(pyspy), "record", "--format", "raw", "--threads", "--rate", "100", *idle, "-o", str(out), "--",
                str(SNAPFERRY), "restore", "--src", src, "--dst", str(target), "--progress", "off", "--json",
                *extra_flags]
        if endpoint:
            argv += ["--custom-s3-endpoint", endpoint]
        print(f"\n=== profile {sid}: {' '.join(argv)}", flush=True)
        m = measure.run(argv, bench.logs / "profile" / f"{sid}", env=bench.env)
        print(f"wall {m.wall:.2f}s ({ds.total_bytes / m.wall / 1e6:.0f} MB/s under py-spy), cpu {m.cpu:.2f}s, "
              f"others {m.other_cpu:.2f}s", flush=True)
        print(summarize(out), flush=True)
        rmtree(target)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15))
