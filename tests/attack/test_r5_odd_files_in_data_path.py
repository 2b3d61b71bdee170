"""Attack of round 5: a FIFO (or a directory) under the name of a file snapferry reads in the
storage data path. A FIFO named `backup_restore.ignore` hung `snapferry manager restore` (the
init container) forever, and one named like a snapshot record (`snapferry_snapshot-*.ignore`)
hung every backup run with --snapshot-create-url; a directory under a record's name failed
every run. Now the mark is refused in one sentence (exit 1, as any unreadable mark), and such a record is skipped with
a warning naming it, the run going on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from snapferry.errors import EXIT_FAILURE, EXIT_USAGE
from tests.attack.r5util import backed_up, month_tree
from tests.test_cli import assert_one_line_error, run
from tests.vm import VMServer, run_snapferry


def _odd(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_restore_mark_that_is_not_a_file_is_refused(kind: str, tmp_path: Path) -> None:
    data = tmp_path / "vmdata"
    data.mkdir()
    mark = data / "backup_restore.ignore"
    _odd(mark, kind)
    # run() has the suite's usual 300 s guard: before the fix the FIFO never returned
    p = run("manager", "restore", "--storage-data-path", str(data), "--progress", "off")
    assert_one_line_error(p, EXIT_FAILURE, str(mark), "not a regular file")
    assert sorted(x.name for x in data.iterdir()) == ["backup_restore.ignore"]


@pytest.mark.vm
@pytest.mark.usefixtures("vm_binaries")
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_snapshot_record_that_is_not_a_file_does_not_stop_backups(
        kind: str, vm_server: Callable[..., VMServer], tmp_path: Path) -> None:
    vm = vm_server(tmp_path / "vmdata", version="1.79.5")
    vm.import_prometheus('up{job="odd"} 1\n')
    vm.force_flush()
    odd = vm.storage_data_path / "snapferry_snapshot-0123456789ab.ignore"
    _odd(odd, kind)
    p = run_snapferry("backup", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                      vm.snapshot_create_url, "--dst", f"fs://{tmp_path / 'bk'}", "--progress", "off", check=False)
    assert p.returncode == 0, p.stderr
    assert f"ignoring {odd}: not a regular file" in p.stderr
    assert (tmp_path / "bk" / "backup_complete.ignore").exists()
    assert vm.snapshot_list() == []  # the run's own snapshot went, as always
    assert os.path.lexists(odd)  # not ours: left where it is


def test_a_restore_mark_naming_partitions_twice_is_refused(tmp_path: Path) -> None:
    """The last `partitions=` line won: the restore brought back those months and deleted the
    ones the first line named from the data path."""
    url = backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}")
    data = tmp_path / "vmdata"
    p = run("restore", "--src", url, "--dst", str(data), "--progress", "off")
    assert p.returncode == 0, p.stderr
    mark = data / "backup_restore.ignore"
    mark.write_text(f"{url}\npartitions=2026_11\npartitions=2026_10\n")
    p = run("manager", "restore", "--storage-data-path", str(data), "--progress", "off")
    assert_one_line_error(p, EXIT_USAGE, str(mark), "partitions= twice")
    assert sorted(x.name for x in (data / "data" / "small").iterdir()) == ["2026_10", "2026_11"]
    assert mark.exists()
