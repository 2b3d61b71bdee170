"""A small per-partition snapshot tree (two months, their indexes, metadata) for round 5's
attacks: real files, backed up to fs:// by the real CLI."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run

MONTHS = ("2026_10", "2026_11")


def month_tree(root: Path, months: tuple[str, ...] = MONTHS) -> Path:
    for m in months:
        (root / "data" / "small" / m / "p1").mkdir(parents=True, exist_ok=True)
        (root / "data" / "small" / m / "p1" / "values.bin").write_bytes(f"values of {m}".encode())
        (root / "data" / "indexdb" / m / "i1").mkdir(parents=True, exist_ok=True)
        (root / "data" / "indexdb" / m / "i1" / "items.bin").write_bytes(f"index of {m}".encode())
    (root / "metadata").mkdir(exist_ok=True)
    (root / "metadata" / "minTimestampForCompositeIndex").write_bytes(b"0")
    return root


def backed_up(tree: Path, url: str, *extra: str) -> str:
    p = run("backup", "--src", str(tree), "--dst", url, "--progress", "off", *extra)
    assert p.returncode == 0, p.stderr
    return url
