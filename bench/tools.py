"""What the bench runs: the tools compared (snapferry, vmbackup/vmrestore, cp) and their command lines."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .datagen import Dataset
from .servers import free_port

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
VENV_BIN = Path(sys.executable).parent
SNAPFERRY = VENV_BIN / "snapferry"
WEED = VENV_BIN / "weed"
VMRESTORE = Path("/usr/bin/vmrestore")
VMBACKUP = Path("/usr/bin/vmbackup")
MIB = 1024 * 1024


@dataclass
class Tool:
    name: str
    argv: Callable[[], list[str]]
    prepare: Callable[[], None] = lambda: None
    verify: Callable[[], None] | None = None
    env: dict[str, str] | None = None
    kind: str = "snapferry"  # snapferry | peer | floor


@dataclass
class Scenario:
    id: str
    title: str
    data_bytes: int  # bytes moved by a full run (0 for nothing-changed runs)
    tools: list[Tool]
    watch: list[int] = field(default_factory=list)  # server pids whose CPU is reported
    notes: str = ""
    group: str = "main"  # main | grid
    cleanup: Callable[[], None] = lambda: None  # after the scenario (unless --keep-targets)


def with_baseline(scn: Scenario, exe: Path) -> Scenario:
    """Add, after each snapferry tool, the same command run by another snapferry executable.

    The tools alternate, so a "before" commit and this one meet the same disk and load; the
    baseline row's ratio (first tool / it) is after/before. Targets and verification are shared:
    each run's prepare step empties them anyway.
    """
    tools: list[Tool] = []
    for t in scn.tools:
        tools.append(t)
        if t.kind == "snapferry" and t.name == "snapferry":  # not every variant: runs are dear
            def argv(t: Tool = t) -> list[str]:
                cmd = t.argv()
                return [str(exe), *cmd[1:]] if cmd and cmd[0] == str(SNAPFERRY) else cmd
            tools.append(Tool(f"{t.name} (baseline)", argv, t.prepare, t.verify, t.env, kind="baseline"))
    return Scenario(scn.id, scn.title, scn.data_bytes, tools, scn.watch, scn.notes, scn.group, scn.cleanup)


def rmtree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)


def sh_cp(src: Path, dst: Path) -> list[str]:
    return ["sh", "-c", 'cp -a "$0" "$1" && sync', str(src), str(dst)]


def sh_read(src: Path) -> list[str]:
    """Only read every source file (8 at a time, to /dev/null): how long the disk needs to
    hand over the bytes at all, the floor under any local restore or backup."""
    return ["sh", "-c", 'find -L "$0" -type f -print0 | xargs -0 -P 8 -n 64 cat > /dev/null', str(src)]


READ_FLOOR = "read only: cat > /dev/null"


def vm_flags_s3(endpoint: str, creds: Path) -> list[str]:
    return [f"-customS3Endpoint={endpoint}", f"-credsFilePath={creds}"]


def vmrestore(src: str, dst: Path, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(VMRESTORE), f"-src={src}", f"-storageDataPath={dst}",
                    f"-httpListenAddr=127.0.0.1:{free_port()}", *(extra or [])]


def vmbackup(ds: Dataset, dst: str, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(VMBACKUP), f"-storageDataPath={ds.storage}", f"-snapshotName={ds.name}", f"-dst={dst}",
                    f"-httpListenAddr=127.0.0.1:{free_port()}", *(extra or [])]


def sf_restore(src: str, dst: Path, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(SNAPFERRY), "restore", "--src", src, "--dst", str(dst), "--progress", "off", "--json",
                    *(extra or [])]


def sf_verify(src: str, extra: list[str]) -> Callable[[], list[str]]:
    return lambda: [str(SNAPFERRY), "verify", "--src", src, "--progress", "off", "--json", *extra]


def sfrun(src: str, dst: Path, args: list[str]) -> Callable[[], list[str]]:
    return lambda: [sys.executable, "-m", "bench.sfrun", "--src", src, "--dst", str(dst), *args]


def sf_backup(ds: Dataset, dst: str, extra: list[str] | None = None) -> Callable[[], list[str]]:
    return lambda: [str(SNAPFERRY), "backup", "--src", str(ds.snapshot), "--dst", dst, "--progress", "off",
                    "--json", *(extra or [])]
