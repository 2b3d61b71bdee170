from __future__ import annotations

from pathlib import Path

from snapferry.restorer.journal import Journal, read_journal


def test_records_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "f.tmp.journal"
    j = Journal.create(str(p), 3000)
    j.record(0, 1000)
    j.record(2000, 1000)
    j.close()
    assert read_journal(str(p), 3000) == {(0, 1000), (2000, 1000)}


def test_wrong_size_or_bad_header_voids_the_journal(tmp_path: Path) -> None:
    p = tmp_path / "f.tmp.journal"
    Journal.create(str(p), 3000).close()
    assert read_journal(str(p), 3001) is None
    p.write_text("snapferry-journal 1 bb8 00000000\n")
    assert read_journal(str(p), 3000) is None
    assert read_journal(str(tmp_path / "missing"), 3000) is None


def test_torn_and_corrupt_records_are_ignored(tmp_path: Path) -> None:
    p = tmp_path / "f.tmp.journal"
    j = Journal.create(str(p), 3000)
    j.record(0, 1000)
    j.close()
    with open(p, "ab") as f:
        f.write(b"3e8 3e8 ffffffff\n")  # bad CRC
        f.write(b"7d0 3e")  # torn by a crash
    assert read_journal(str(p), 3000) == {(0, 1000)}
