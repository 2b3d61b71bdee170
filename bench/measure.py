"""Run one tool as a child process and measure it: wall time, CPU, peak RSS, noise.

Every tool (snapferry, vmrestore, vmbackup, cp) runs as a subprocess and is
reaped with os.wait4, so ru_utime/ru_stime are the child's own (plus its
waited-for descendants, e.g. `cp` and `sync` under `sh -c`). The peak RSS
comes from GNU time wrapped around the tool: Linux carries the parent's
high-water RSS across fork+exec into the child's ru_maxrss, so a child of
this ~90 MiB Python process would never report less than that; the small
`time` process in between reports the tool's own peak (from its wait4).
Servers in the loop (SeaweedFS, the proxy) are sampled from /proc before and
after, and so is the whole machine, which tells how much CPU other processes
(other agents sharing the two cores) burnt during the run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"


@dataclass
class Measurement:
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    rc: int
    server_cpu: float = 0.0  # SeaweedFS + proxy, seconds
    other_cpu: float = 0.0  # everything else on the machine, seconds
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["cpu"] = self.cpu
        return d


class CommandFailed(RuntimeError):
    pass


def _read_rss(path: Path, fallback: int) -> int:
    try:
        return int(path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return fallback


def proc_cpu(pid: int) -> float:
    """utime+stime (+ reaped children) of a live process, in seconds; 0 if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[11..14] are utime, stime, cutime, cstime (fields 14..17 of proc(5))
    return sum(int(x) for x in fields[11:15]) / _TICK


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def drop_caches() -> bool:
    """sync, then drop the page cache, dentries and inodes; False when not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def check_drop_caches(probe_dir: Path) -> bool:
    """Write a file, read it (cached), drop, and see whether Cached shrank."""
    probe = probe_dir / ".dropcache-probe"
    probe.write_bytes(os.urandom(64 * 1024 * 1024))
    probe.read_bytes()
    before = _meminfo("Cached")
    ok = drop_caches()
    after = _meminfo("Cached")
    probe.unlink()
    return ok and after < before - 32 * 1024


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def run(
    argv: Sequence[str],
    log_base: Path,
    env: dict[str, str] | None = None,
    watch_pids: Sequence[int] = (),
    check: bool = True,
    timeout: float = 3600,
) -> Measurement:
    """Run argv to completion; stdout/stderr go to log_base.out/.err."""
    log_base.parent.mkdir(parents=True, exist_ok=True)
    out_path = log_base.with_suffix(".out")
    err_path = log_base.with_suffix(".err")
    rss_path = log_base.with_suffix(".rss")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        srv0 = sum(proc_cpu(p) for p in watch_pids)
        busy0 = machine_busy()
        t0 = time.perf_counter()
        wrapped = [GNU_TIME, "-o", str(rss_path), "-f", "%M", *argv] if os.path.exists(GNU_TIME) else list(argv)
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _pid, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        busy1 = machine_busy()
        srv1 = sum(proc_cpu(p) for p in watch_pids)
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
    m = Measurement(
        wall=wall,
        user=ru.ru_utime,
        sys=ru.ru_stime,
        maxrss_kib=_read_rss(rss_path, ru.ru_maxrss),
        rc=proc.returncode,
        server_cpu=max(0.0, srv1 - srv0),
    )
    m.other_cpu = max(0.0, (busy1 - busy0) - m.cpu - m.server_cpu)
    if check and m.rc != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise CommandFailed(f"exit {m.rc}: {shlex.join(argv)}\n--- {err_path} (tail) ---\n{tail}")
    return m
