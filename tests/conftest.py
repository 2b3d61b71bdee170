"""Shared fixtures: the real servers live in tests/servers.py and tests/vm.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.datagen import tree_digest

pytest_plugins = ["tests.servers", "tests.vm", "tests.tinyhttp", "tests.container"]

SNAPSHOT_NAME = "20261124120000-17A3F0C2D1E50050"
SLOW_LIST = Path(__file__).with_name("slow.txt")


__all__ = ["SNAPSHOT_NAME", "tree_digest", "write_random"]


def write_random(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))


def slow_tests() -> set[str]:
    """tests/slow.txt: node ids (a test, a test with its parameters, or a module), one a line."""
    lines = (line.partition("#")[0].strip() for line in SLOW_LIST.read_text().splitlines())
    return {line for line in lines if line}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the measured long tests `slow`, so `pytest -m "not slow"` is the edit-test loop
    (docs/architecture.md, "Tests"); the whole suite (scripts/test.sh) stays the CI gate."""
    slow = slow_tests()
    for item in items:
        nodeid = item.nodeid
        if nodeid in slow or nodeid.partition("[")[0] in slow or nodeid.partition("::")[0] in slow:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def snapshot_tree(tmp_path: Path) -> Path:
    """A small VictoriaMetrics-like snapshot: multi-part files, small parts, empty files."""
    root = tmp_path / "vmdata" / "snapshots" / SNAPSHOT_NAME
    part = root / "data" / "small" / "2026_11" / "17A3F0C2D1E50050"
    write_random(part / "values.bin", 3 * 1024 * 1024 + 17, 1)
    write_random(part / "timestamps.bin", 700_000, 2)
    write_random(part / "index.bin", 4096, 3)
    (part / "metaindex.bin").write_bytes(b"")
    (part / "parts.json").write_text('{"parts":["17A3F0C2D1E50050"]}')
    write_random(root / "indexdb" / "17A3F0C2D1E50051" / "items.bin", 2 * 1024 * 1024, 4)
    (root / "data" / "big").mkdir(parents=True)
    (root / "data" / "big" / "appliedRetention.txt").write_text("1700000000")
    return root
