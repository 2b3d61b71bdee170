"""What the results record about the machine and the code they were measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from .tools import HERE, WEED


def journal(device: str) -> str:
    """Whether the ext4 filesystem on device keeps a journal (jbd2 lists it): without one,
    ext4 skips inodes freed in the last minutes when it makes a file, so a restore right
    after the bench deleted the previous target spends much of its kernel time there
    (`recently_deleted` in perf), whichever tool runs."""
    dev = os.path.basename(device)
    if not os.path.isdir(f"/proc/fs/ext4/{dev}"):
        return "n/a"
    jbd2 = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
    return "yes" if any(n.startswith(f"{dev}-") for n in jbd2) else "no"


def fs_of(path: Path) -> tuple[str, str]:
    """(type, device) of the filesystem holding path."""
    out = subprocess.run(["df", "-PT", str(path)], capture_output=True, text=True, timeout=20).stdout.splitlines()
    if len(out) < 2:
        return "?", "?"
    cols = out[-1].split()
    return cols[1], cols[0]


def machine_info(work: Path, can_drop: bool, targets: Path | None = None) -> dict[str, object]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except OSError:
            return "?"

    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu_model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    fs, device = fs_of(work)
    targets = targets or work
    t_fs, t_device = fs_of(targets)
    from importlib.metadata import version

    vmv = cmd("dpkg-query", "-W", "-f=vmbackup/vmrestore ${Version} (Debian package victoria-metrics)",
              "victoria-metrics")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        # Relative to the repo when inside it: results are committed and must not name this machine.
        "workdir": display_path(work),
        "filesystem": fs,
        "device": device,
        "journal": journal(device),
        # Restore targets and fs:// backup destinations (`--targets`).
        "targets": _below(targets, work),
        "targets_filesystem": t_fs,
        "targets_journal": journal(t_device),
        "python": platform.python_version(),
        "snapferry": version("snapferry"),
        "vmrestore": vmv.splitlines()[0] if vmv else "?",
        "weed": cmd(str(WEED), "version").splitlines()[0] if WEED.exists() else "?",
        "drop_caches": can_drop,
        "loadavg": os.getloadavg(),
    }


def git_commit() -> str:
    """HEAD of the repository under test, with '+dirty' when src/ has uncommitted changes."""
    root = HERE.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+dirty" if dirty else "")


def snapferry_defaults() -> str:
    """The snapferry restore defaults in effect (src changes while the bench runs)."""
    import dataclasses

    from snapferry import api
    from snapferry.restorer.downloader import Tuning

    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(Tuning()).items() if k != "concurrency")
    return f"--concurrency {api.DEFAULT_CONCURRENCY}; Tuning({fields})"


def _below(path: Path, work: Path) -> str:
    """path as `<workdir>/...` when inside the workdir (the default), else as given."""
    try:
        return "<workdir>/" + path.resolve().relative_to(work.resolve()).as_posix()
    except ValueError:
        return display_path(path)


def display_path(path: Path) -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        return path.resolve().relative_to(repo).as_posix()
    except ValueError:
        return str(path)
