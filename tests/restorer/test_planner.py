from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.errors import BadBackupError
from snapferry.local import LocalEntry, TargetListing
from snapferry.parts import Part, split_file
from snapferry.restorer.journal import Journal
from snapferry.restorer.planner import FileMode, plan_restore


def _parts(path: str, size: int, part: int = 100) -> list[Part]:
    return list(split_file(path, size, part))


def test_fresh_target_downloads_everything(tmp_path: Path) -> None:
    parts = _parts("a/x.bin", 250) + _parts("b.bin", 0)
    plan = plan_restore(parts, TargetListing({}, []), str(tmp_path), preallocate=True)
    assert [(f.path, f.mode, len(f.parts)) for f in plan.files] == [
        ("a/x.bin", FileMode.NEW, 3), ("b.bin", FileMode.NEW, 1)
    ]
    assert plan.download_bytes == 250 and plan.space_needed() == 250
    assert plan.files[0].has_journal and not plan.files[1].has_journal


def test_same_size_files_are_kept_and_extras_deleted(tmp_path: Path) -> None:
    parts = _parts("x.bin", 250) + _parts("d/parts.json", 10)
    local = {
        "x.bin": LocalEntry("x.bin", 250, False),
        "d/parts.json": LocalEntry("d/parts.json", 10, False),
        "old.bin": LocalEntry("old.bin", 5, False),
        "link": LocalEntry("link", 0, True),
    }
    plan = plan_restore(parts, TargetListing(local, ["y.bin.tmp"]), str(tmp_path), preallocate=True)
    assert [f.path for f in plan.files] == ["d/parts.json"]  # always transferred
    assert plan.delete == ["link", "old.bin"] and plan.delete_tmp == ["y.bin.tmp"]


def test_journal_resume_only_downloads_unrecorded_parts(tmp_path: Path) -> None:
    (tmp_path / "x.bin.tmp").write_bytes(bytes(250))
    j = Journal.create(str(tmp_path / "x.bin.tmp.journal"), 250)
    j.record(100, 100)
    j.close()
    listing = TargetListing({}, ["x.bin.tmp", "x.bin.tmp.journal"])
    plan = plan_restore(_parts("x.bin", 250), listing, str(tmp_path), preallocate=True)
    assert plan.files[0].mode is FileMode.RESUME
    assert [p.offset for p in plan.files[0].parts] == [0, 200]
    assert plan.resumed_bytes == 100 and plan.delete_tmp == []


def test_tmp_of_wrong_length_is_not_resumed(tmp_path: Path) -> None:
    (tmp_path / "x.bin.tmp").write_bytes(bytes(10))
    j = Journal.create(str(tmp_path / "x.bin.tmp.journal"), 250)
    j.record(0, 100)
    j.close()
    listing = TargetListing({}, ["x.bin.tmp", "x.bin.tmp.journal"])
    plan = plan_restore(_parts("x.bin", 250), listing, str(tmp_path), preallocate=True)
    assert plan.files[0].mode is FileMode.NEW and plan.delete_tmp == ["x.bin.tmp", "x.bin.tmp.journal"]


def test_inplace_keeps_whole_parts_below_the_length_of_a_marked_file(tmp_path: Path) -> None:
    Journal.create(str(tmp_path / "x.bin.tmp.journal"), 250).close()
    local = {"x.bin": LocalEntry("x.bin", 150, False)}
    listing = TargetListing(local, ["x.bin.tmp.journal"])
    plan = plan_restore(_parts("x.bin", 250), listing, str(tmp_path), preallocate=False)
    f = plan.files[0]
    assert f.mode is FileMode.INPLACE and f.truncate_to == 100 and [p.offset for p in f.parts] == [100, 200]
    assert plan.delete_tmp == []


def test_inplace_refetches_the_last_part_of_a_marked_full_length_file(tmp_path: Path) -> None:
    Journal.create(str(tmp_path / "x.bin.tmp.journal"), 250).close()
    local = {"x.bin": LocalEntry("x.bin", 250, False)}
    plan = plan_restore(_parts("x.bin", 250), TargetListing(local, ["x.bin.tmp.journal"]), str(tmp_path), False)
    assert [p.offset for p in plan.files[0].parts] == [200]


def test_inplace_does_not_trust_a_shorter_file_it_did_not_write(tmp_path: Path) -> None:
    local = {"x.bin": LocalEntry("x.bin", 150, False)}
    plan = plan_restore(_parts("x.bin", 250), TargetListing(local, []), str(tmp_path), preallocate=False)
    assert plan.files[0].truncate_to == 0 and len(plan.files[0].parts) == 3


def test_inplace_larger_file_is_rewritten(tmp_path: Path) -> None:
    local = {"x.bin": LocalEntry("x.bin", 999, False)}
    plan = plan_restore(_parts("x.bin", 250), TargetListing(local, []), str(tmp_path), preallocate=False)
    assert plan.files[0].truncate_to == 0 and len(plan.files[0].parts) == 3


def test_file_and_directory_clash_is_refused(tmp_path: Path) -> None:
    parts = _parts("a", 5) + _parts("a/b", 5)
    with pytest.raises(BadBackupError, match="both a file and a directory"):
        plan_restore(parts, TargetListing({}, []), str(tmp_path), preallocate=True)


@pytest.mark.parametrize("interrupted", [False, True])
def test_after_an_interrupted_restore_small_files_are_fetched_again(tmp_path: Path, interrupted: bool) -> None:
    # Small single-part files are synced only by the batch's syncfs before the marker goes:
    # with the marker still there their length proves nothing. Multi-part files are not batched.
    parts = _parts("small.bin", 80) + _parts("multi.bin", 250)
    local = {"small.bin": LocalEntry("small.bin", 80, False), "multi.bin": LocalEntry("multi.bin", 250, False)}
    markers = ("restore-in-progress",) if interrupted else ()
    plan = plan_restore(parts, TargetListing(local, [], vm_markers=markers), str(tmp_path), preallocate=True)
    assert [f.path for f in plan.files] == (["small.bin"] if interrupted else [])
    assert plan.download_bytes == plan.refetched_bytes == (80 if interrupted else 0)
