"""partitions.py: layouts, sizes and the --partitions/--since selection, from part lists
shaped like the real backups of VictoriaMetrics 1.145.0 and 1.79.5 (see
tests/restorer/test_partial_vm.py for the same rules on real databases)."""

from __future__ import annotations

import datetime as dt

import pytest

from snapferry.errors import BadBackupError, UsageError
from snapferry.partitions import (
    Layout,
    describe,
    parse_partition_names,
    parse_since,
    partition_of,
    select,
    selected_parts,
)
from snapferry.parts import Part

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
SRC = "fs:///b"


def _part(path: str, size: int, offset: int = 0, file_size: int | None = None) -> Part:
    return Part(path, file_size if file_size is not None else size, offset, size, size)


def _new_layout(months: list[str]) -> list[Part]:
    parts = [_part("metadata/minTimestampForCompositeIndex", 8), _part("backup_metadata.ignore", 10)]
    for i, m in enumerate(months):
        parts += [
            _part(f"data/small/{m}/18EF14A556DACEB{i}/values.bin", 100 * (i + 1)),
            _part(f"data/small/{m}/parts.json", 50),
            _part(f"data/indexdb/{m}/18EF14A556B8B49{i}/items.bin", 10 * (i + 1)),
            _part(f"data/indexdb/{m}/parts.json", 50),
        ]
    return parts


def _legacy_layout(months: list[str]) -> list[Part]:
    parts = [_part("indexdb/1800/1801/items.bin", 77), _part("metadata/minTimestampForCompositeIndex", 8)]
    for m in months:
        parts.append(_part(f"data/small/{m}/200_5_x_18EF/values.bin", 30))
    return parts


MONTHS = ["2026_08", "2026_09", "2026_10", "2026_11", "2026_12"]


def test_partition_of() -> None:
    assert partition_of("data/small/2026_11/X/values.bin") == "2026_11"
    assert partition_of("data/big/2026_11/X/values.bin") == "2026_11"
    assert partition_of("data/indexdb/2026_11/parts.json") == "2026_11"
    assert partition_of("data/big/snapshots/x/y") is None
    assert partition_of("indexdb/1800/items.bin") is None
    assert partition_of("metadata/minTimestampForCompositeIndex") is None


def test_layouts_and_sizes() -> None:
    info = describe(_new_layout(MONTHS))
    assert info.layout is Layout.PER_PARTITION
    assert info.names == tuple(MONTHS)
    first = info.partitions[0]
    assert (first.data_bytes, first.index_bytes, first.files) == (150, 60, 4)
    assert info.other_bytes == 18
    assert describe(_legacy_layout(MONTHS)).layout is Layout.LEGACY
    assert describe(_legacy_layout(["2026_01"]) + _new_layout(["2026_12"])).layout is Layout.MIXED
    assert describe([_part("metadata/minTimestampForCompositeIndex", 8)]).layout is Layout.NONE


def test_a_file_in_several_parts_counts_once() -> None:
    big = 3 * 1024
    parts = [_part("data/big/2026_12/X/values.bin", 1024, off, big) for off in (0, 1024, 2048)]
    parts.append(_part("data/indexdb/2026_12/parts.json", 5))
    p = describe(parts).partitions[0]
    assert (p.data_bytes, p.index_bytes, p.files) == (big, 5, 2)


def test_partitions_select_named_months_and_every_other_file() -> None:
    parts = _new_layout(MONTHS)
    sel = select(parts, partitions="2026_12, 2026_10", since=None, now=NOW, src=SRC)
    assert sel is not None and sel.names == ("2026_10", "2026_12")
    kept = {p.path for p in selected_parts(parts, sel)}
    assert "metadata/minTimestampForCompositeIndex" in kept and "backup_metadata.ignore" in kept
    assert {partition_of(p) for p in kept} == {None, "2026_10", "2026_12"}
    assert sel.bytes == sum(p.bytes for p in describe(parts).partitions if p.name in sel.names)


def test_no_selection_is_a_full_restore() -> None:
    assert select(_new_layout(MONTHS), partitions=None, since=None, now=NOW, src=SRC) is None


@pytest.mark.parametrize(
    ("since", "months"),
    [
        ("7d", ("2026_11", "2026_12")),  # 2026-11-30 12:00: November overlaps by half a day
        ("6d", ("2026_12",)),
        ("45d", ("2026_10", "2026_11", "2026_12")),
        ("2026-11-01", ("2026_11", "2026_12")),
        ("2026-10-31T23:59:59Z", ("2026_10", "2026_11", "2026_12")),
        ("1y", tuple(MONTHS)),
    ],
)
def test_since_selects_months_overlapping_the_range(since: str, months: tuple[str, ...]) -> None:
    sel = select(_new_layout(MONTHS), partitions=None, since=since, now=NOW, src=SRC)
    assert sel is not None and sel.names == months


def test_both_flags_mean_the_intersection() -> None:
    sel = select(_new_layout(MONTHS), partitions="2026_08,2026_11,2026_12", since="45d", now=NOW, src=SRC)
    assert sel is not None and sel.names == ("2026_11", "2026_12")


@pytest.mark.parametrize("bad", ["2026-11", "2026_13", "26_11", "2026_1", "", "2026_11,x"])
def test_malformed_names_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a month partition name; use YYYY_MM"):
        parse_partition_names(bad)


@pytest.mark.parametrize("bad", ["yesterday", "5x", "-3d", "2026-13-01"])
def test_malformed_since_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="neither a duration"):
        parse_since(bad, NOW)


def test_a_partition_the_backup_lacks() -> None:
    with pytest.raises(UsageError, match=r"has no partition 2025_01 \(it has: 2026_08, .*\); check --partitions"):
        select(_new_layout(MONTHS), partitions="2025_01,2026_12", since=None, now=NOW, src=SRC)


def test_a_range_that_selects_nothing() -> None:
    with pytest.raises(UsageError, match="--partitions 2026_08 and --since 30d selects no partition"):
        select(_new_layout(MONTHS), partitions="2026_08", since="30d", now=NOW, src=SRC)
    with pytest.raises(UsageError, match="--since 2027-01-01 selects no partition"):
        select(_new_layout(MONTHS), partitions=None, since="2027-01-01", now=NOW, src=SRC)


def test_the_legacy_layout_is_refused() -> None:
    with pytest.raises(BadBackupError, match=r"legacy global indexdb/.*cannot be split by partition; restore it whole"):
        select(_legacy_layout(MONTHS), partitions="2026_12", since=None, now=NOW, src=SRC)


def test_the_mixed_layout_keeps_the_legacy_index_whole() -> None:
    mixed = _legacy_layout(["2026_01"]) + _new_layout(["2026_11", "2026_12"])
    sel = select(mixed, partitions="2026_12", since=None, now=NOW, src=SRC)
    assert sel is not None and sel.layout is Layout.MIXED
    kept = {p.path for p in selected_parts(mixed, sel)}
    assert "indexdb/1800/1801/items.bin" in kept
    assert {partition_of(p) for p in kept} == {None, "2026_12"}
