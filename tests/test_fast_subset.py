"""The edit-test loop's subset: tests/slow.txt marks tests `slow`, `-m "not slow"` leaves them out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import slow_tests

ROOT = Path(__file__).resolve().parent.parent


def _collected(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_listed_tests_are_marked_slow_and_left_out_of_the_fast_subset() -> None:
    """The module has slow tests listed by their parameters and by name alone, and fast ones."""
    module = "tests/test_cli_startup.py"
    listed = slow_tests()
    every = _collected(module)
    fast = _collected("-m", "not slow", module)
    slow = _collected("-m", "slow", module)
    assert slow == {n for n in every if n in listed or n.partition("[")[0] in listed}
    assert fast == every - slow
    assert slow, f"tests/slow.txt lists no test of {module}"
    assert fast, f"every test of {module} is slow: the subset would not run it at all"


def test_every_listed_test_exists() -> None:
    """A renamed or removed test leaves the list too: a stale line marks nothing, and the renamed test
    would run in the fast loop unnoticed."""
    listed = slow_tests()
    modules = sorted({t.partition("::")[0] for t in listed})
    collected = _collected(*modules)
    names = collected | {n.partition("[")[0] for n in collected} | set(modules)
    assert listed <= names, sorted(listed - names)
