"""Attack of round 3: the CLI raises the soft limit of open files. An unlimited hard limit
made it ask for an unlimited soft one, which setrlimit refuses, so the limit stayed at its
default. Linux itself refuses a hard limit above fs.nr_open (prlimit --nofile=1024:unlimited
fails, also as root), so that case is asserted on the decision; the raise itself in a real
process under prlimit."""

from __future__ import annotations

import resource
import subprocess
import sys

from snapferry.cli.main import nofile_soft_target

INF = resource.RLIM_INFINITY


def test_an_unlimited_hard_limit_raises_the_soft_one_to_nr_open() -> None:
    assert nofile_soft_target(1024, INF, INF, lambda: 1 << 20) == 1 << 20
    assert nofile_soft_target(1024, 4096, INF, lambda: 1 << 20) == 4096
    assert nofile_soft_target(4096, 4096, INF, lambda: 1 << 20) is None
    assert nofile_soft_target(INF, INF, INF, lambda: 1 << 20) is None


def test_the_cli_entry_raises_the_soft_limit_of_a_real_process() -> None:
    code = (
        "import importlib, resource; importlib.import_module('snapferry.cli.main')._open_files_up_to_the_hard_limit(); "
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    p = subprocess.run(["prlimit", "--nofile=256:4096", sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=120, check=True)
    assert p.stdout.split() == ["4096", "4096"], p.stdout
