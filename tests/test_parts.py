from __future__ import annotations

import pytest

from snapferry.errors import BadBackupError
from snapferry.parts import (
    MAX_PART_SIZE,
    Part,
    always_transfer,
    check_coverage,
    difference,
    group_by_file,
    parse_name,
    split_file,
    validate_path,
)


def test_name_is_vmbackup_format() -> None:
    p = Part("data/small/2026_11/17A3F0C2D1E50050/timestamps.bin", 0x3DF3F, 0, 0x3DF3F, 0x3DF3F)
    assert p.name == (
        "data/small/2026_11/17A3F0C2D1E50050/timestamps.bin/"
        "000000000003DF3F_0000000000000000_000000000003DF3F"
    )
    assert parse_name(p.name, 0x3DF3F) == p


def test_parse_rejects_lowercase_and_short_hex() -> None:
    assert parse_name("a/000000000003df3f_0000000000000000_000000000003DF3F", 1) is None
    assert parse_name("a/3DF3F_0_3DF3F", 1) is None
    assert parse_name("0000000000000001_0000000000000000_0000000000000001", 1) is None
    # Go's `$` (vmbackup) is the end of the text: no trailing newline, no newline in the path.
    assert parse_name("a/0000000000000001_0000000000000000_0000000000000001\n", 1) is None
    assert parse_name("a\nb/0000000000000001_0000000000000000_0000000000000001", 1) is None
    assert parse_name("/0000000000000001_0000000000000000_0000000000000001", 1) is None  # no path


def test_parse_accepts_backslash_separator_and_keeps_a_leading_slash_for_validation() -> None:
    p = parse_name("/x/y\\0000000000000002_0000000000000000_0000000000000002", 2)
    assert p is not None and p.path == "/x/y" and p.size == 2
    with pytest.raises(BadBackupError, match="unsafe path '/x/y'"):
        validate_path(p.path)


def test_split_file_default_part_size_is_1gib() -> None:
    parts = list(split_file("f", 2 * MAX_PART_SIZE + 5))
    assert [(p.offset, p.size) for p in parts] == [
        (0, MAX_PART_SIZE),
        (MAX_PART_SIZE, MAX_PART_SIZE),
        (2 * MAX_PART_SIZE, 5),
    ]
    assert list(split_file("e", 0)) == [Part("e", 0, 0, 0, 0)]


def test_broken_part_differs_from_whole_one() -> None:
    whole = Part("f", 10, 0, 10, 10)
    broken = Part("f", 10, 0, 10, 7)
    assert broken.is_broken and not whole.is_broken
    assert difference([whole], [broken]) == [whole]


def test_always_transfer_rule() -> None:
    assert always_transfer("data/small/2026_11/parts.json")
    assert always_transfer("data/big/appliedRetention.txt")
    assert always_transfer("parts.json")
    assert not always_transfer("data/small/2026_11/xparts.json")
    assert not always_transfer("data/small/values.bin")


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "", "a\\b", "flock.lock"])
def test_validate_path_refuses_escapes(bad: str) -> None:
    with pytest.raises(BadBackupError):
        validate_path(bad)


def test_coverage_gap_overlap_size() -> None:
    ok = [Part("f", 10, 0, 4, 4), Part("f", 10, 4, 6, 6)]
    check_coverage(group_by_file(ok))
    with pytest.raises(BadBackupError, match="gap"):
        check_coverage(group_by_file([Part("f", 10, 0, 4, 4), Part("f", 10, 5, 5, 5)]))
    with pytest.raises(BadBackupError, match="overlaps"):
        check_coverage(group_by_file([Part("f", 10, 0, 5, 5), Part("f", 10, 4, 6, 6)]))
    with pytest.raises(BadBackupError, match="cover"):
        check_coverage(group_by_file([Part("f", 10, 0, 4, 4)]))
    with pytest.raises(BadBackupError, match="broken"):
        check_coverage(group_by_file([Part("f", 10, 0, 10, 3)]))
