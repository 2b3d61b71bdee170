"""Issue 9 items 7 and 9 (the CLI and backup bits) and 11.4 on the command line:
real subprocesses, real files, real servers."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import EXIT_BAD_BACKUP, EXIT_FAILURE, EXIT_USAGE, UsageError
from tests.conftest import tree_digest, write_random
from tests.fsutil import tree_state
from tests.servers import S3Server
from tests.test_cli import assert_one_line_error, run
from tests.vm import VMServer, make_samples

StartVM = Callable[..., VMServer]

MIB = 1024 * 1024


@pytest.fixture
def bk(snapshot_tree: Path, tmp_path: Path) -> str:
    url = f"fs://{tmp_path / 'bk'}"
    snapferry.backup(url, str(snapshot_tree), max_part_size=MIB, progress="off")
    return url


# --- 9.7: names ---------------------------------------------------------------------------

ODD_BUT_FINE = ["with space.bin", "данные-✓.bin", "a+b=c%20#d'e.bin", "semi;colon&amp.bin"]


@pytest.mark.parametrize("where", ["fs", "s3"])
def test_names_vmbackup_can_store_round_trip(
    snapshot_tree: Path, tmp_path: Path, seaweedfs: S3Server, where: str
) -> None:
    for i, name in enumerate(ODD_BUT_FINE):
        write_random(snapshot_tree / "data" / "odd" / name, 1000 + i, i)
    if where == "fs":
        url, opts = f"fs://{tmp_path / 'bk'}", None
    else:
        url, opts = seaweedfs.new_remote()
    snapferry.backup(url, str(snapshot_tree), progress="off", remote_options=opts)
    out = tmp_path / "out"
    snapferry.restore(url, str(out), progress="off", remote_options=opts)
    assert tree_digest(out) == tree_digest(snapshot_tree)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (b"new\nline.bin", "newline"),
        (b"back\\slash.bin", "backslash"),
        (b"latin1-\xe9t\xe9.bin", "not valid UTF-8"),
        (b"leftover.bin.tmp", ".tmp"),
    ],
)
def test_names_that_cannot_round_trip_are_refused_at_backup_time(
    snapshot_tree: Path, tmp_path: Path, name: bytes, words: str
) -> None:
    d = os.fsencode(snapshot_tree / "data")
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x")
    os.close(fd)
    p = run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'bk'}")
    assert_one_line_error(p, EXIT_USAGE, words, "cannot back up the source file")
    line = next(ln for ln in p.stderr.splitlines() if "error" in ln)
    assert repr(name)[2:-1] in line, line  # names the file, escaped, on the one line
    assert "internal error" not in p.stderr
    assert not (tmp_path / "bk" / "backup_complete.ignore").exists()


# --- 9.9 ----------------------------------------------------------------------------------


def test_chunk_size_has_a_floor(bk: str, tmp_path: Path) -> None:
    p = run("restore", "--src", bk, "--dst", str(tmp_path / "out"), "--chunk-size", "1")
    assert_one_line_error(p, EXIT_USAGE, "--chunk-size", "1 MiB")
    assert not (tmp_path / "out").exists()
    p = run("restore", "--src", bk, "--dst", str(tmp_path / "out"), "--chunk-size", str(MIB), "--progress", "off")
    assert p.returncode == 0, p.stderr


def test_src_with_storage_data_path_is_refused(snapshot_tree: Path, tmp_path: Path) -> None:
    p = run("backup", "--src", str(snapshot_tree), "--storage-data-path", str(tmp_path / "vmdata"),
            "--dst", f"fs://{tmp_path / 'bk'}")
    assert_one_line_error(p, EXIT_USAGE, "--src and --storage-data-path")
    assert not (tmp_path / "bk").exists()


def test_dst_inside_the_data_directory_of_a_snapshot_path_is_refused(snapshot_tree: Path) -> None:
    data = snapshot_tree.parent.parent  # <data>/snapshots/<name>
    p = run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{data / 'backups'}")
    assert_one_line_error(p, EXIT_USAGE, "inside the source")
    assert not (data / "backups").exists()


def test_snapshot_left_after_a_complete_backup_is_reported(vm_server: StartVM, tmp_path: Path,
                                                           vm_version: str) -> None:
    storage, bk_dir = tmp_path / "vm", tmp_path / "bk"
    vm = vm_server(storage, version=vm_version)
    vm.ingest(make_samples(seed=3, series=2, per_series=50))
    vm.force_flush()
    p = run("backup", "--storage-data-path", str(storage), "--snapshot-create-url", vm.snapshot_create_url,
            "--snapshot-delete-url", f"{vm.url}/snapshot/no-such-endpoint", "--dst", f"fs://{bk_dir}",
            "--progress", "off")
    left = vm.snapshot_list()
    assert len(left) == 1
    assert_one_line_error(p, EXIT_FAILURE, "is complete", left[0], "curl")
    assert (bk_dir / "backup_complete.ignore").exists()  # the backup itself is good
    out = tmp_path / "out"
    snapferry.restore(f"fs://{bk_dir}", str(out), progress="off")
    assert tree_digest(out) == tree_digest(storage / "snapshots" / left[0])
    vm.snapshot_delete(left[0])



def test_a_failed_backup_s_error_wins_over_a_snapshot_it_cannot_delete(vm_server: StartVM, tmp_path: Path,
                                                                      vm_version: str) -> None:
    storage, bk_dir = tmp_path / "vm", tmp_path / "bk"
    vm = vm_server(storage, version=vm_version)
    vm.ingest(make_samples(seed=4, series=2, per_series=50))
    vm.force_flush()
    bk_dir.write_text("not a directory")  # the backup fails after the snapshot is made
    p = run("backup", "--storage-data-path", str(storage), "--snapshot-create-url", vm.snapshot_create_url,
            "--snapshot-delete-url", f"{vm.url}/snapshot/no-such-endpoint", "--dst", f"fs://{bk_dir}",
            "--progress", "off")
    left = vm.snapshot_list()
    assert len(left) == 1
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "is complete" not in errors[0], p.stderr  # the backup's own error
    warning = [ln for ln in p.stderr.splitlines() if f"the snapshot {left[0]} is left" in ln]
    assert len(warning) == 1 and "curl" in warning[0], p.stderr
    vm.snapshot_delete(left[0])

def test_summary_is_printed_once(snapshot_tree: Path, tmp_path: Path) -> None:
    p = run("backup", "--src", str(snapshot_tree), "--dst", f"fs://{tmp_path / 'bk'}", "--progress", "off")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("backed up") == 1, p.stderr
    assert "backup complete" not in p.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_failure_is_one_object_on_stdout(bk: str, tmp_path: Path, where: str) -> None:
    Path(bk[5:], "backup_complete.ignore").unlink()
    args = ["restore", "--src", bk, "--dst", str(tmp_path / "out"), "--json"]
    p = run(*(args if where == "after" else ["--log-level", "warning", *args]))
    assert_one_line_error(p, EXIT_BAD_BACKUP, "backup_complete.ignore")
    err = json.loads(p.stdout)
    assert err["ok"] is False and err["exit_code"] == EXIT_BAD_BACKUP and err["action"] == "restore"
    assert "backup_complete.ignore" in err["error"] and err["kind"] == "BadBackupError"
    p = run("restore", "--src", bk, "--dst", str(tmp_path / "out"), "--json", "--chunk-size", "5")
    assert p.returncode == EXIT_USAGE and json.loads(p.stdout)["exit_code"] == EXIT_USAGE


def test_restore_help_lists_no_upload_options() -> None:
    restore_help, backup_help, copy_help = (run(c, "--help").stdout for c in ("restore", "backup", "copy"))
    for opt in ("--s3-storage-class", "--s3-acl", "--s3-object-tags", "--object-metadata",
                "--s3-checksum-algorithm", "--s3-sse-kms-key-id"):
        assert opt not in restore_help
        assert opt in backup_help and opt in copy_help
    for opt in ("--custom-s3-endpoint", "--creds-file-path", "--retries", "--read-timeout", "--log-level"):
        assert opt in restore_help


def test_log_level_after_the_subcommand(bk: str, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    p = run("restore", "--src", bk, "--dst", out, "--progress", "off", "--log-level", "warning")
    assert p.returncode == 0, p.stderr
    assert "listing parts" not in p.stderr and "restored" in p.stderr
    p = run("--log-level", "warning", "restore", "--src", bk, "--dst", out, "--log-level", "debug")
    assert p.returncode == 0 and "listing parts" in p.stderr  # the later one wins


def test_progress_bar_speed_is_in_the_units_of_its_byte_counts() -> None:
    from rich.console import Console

    from snapferry.progress import bar_progress

    now = [0.0]
    buf = io.StringIO()
    with bar_progress(
        console=Console(file=buf, force_terminal=True, width=200), get_time=lambda: now[0], auto_refresh=False,
    ) as bar:
        task = bar.add_task("restore", total=100 * MIB)
        for t in range(1, 6):
            now[0] = float(t)
            bar.update(task, completed=t * 10 * MIB)
        line = "".join(str(c.render(bar.tasks[0])) for c in bar.columns[3:5])
    assert "50.0/100.0 MiB" in line and "10.0 MiB/s" in line, line


# --- 11.4 on the command line -------------------------------------------------------------


@pytest.mark.parametrize("target", ["absent", "data-dir"])
def test_dry_run_cli_changes_nothing(bk: str, tmp_path: Path, target: str) -> None:
    dst = tmp_path / "vm"
    if target == "data-dir":
        write_random(dst / "data" / "old" / "gone.bin", 1234, 1)
        (dst / "flock.lock").write_bytes(b"")
    before = tree_state(dst)
    p = run("restore", "--src", bk, "--dst", str(dst), "--dry-run", "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert plan["dry_run"] is True and plan["bytes_to_download"] == plan["backup_bytes"] > 0
    assert plan["space_needed"] == plan["backup_bytes"] and plan["space_available"] >= plan["space_free"] > 0
    if target == "data-dir":
        assert plan["delete"] == [{"path": "data/old/gone.bin", "bytes": 1234}] and plan["bytes_to_delete"] == 1234
    p = run("restore", "--src", bk, "--dst", str(dst), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "nothing was changed" in p.stderr and "download data/small" in p.stdout
    assert ("delete data/old/gone.bin" in p.stdout) is (target == "data-dir")
    assert tree_state(dst) == before


def test_force_on_the_command_line(bk: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_random(home / "notes.txt", 10, 1)
    p = run("restore", "--src", bk, "--dst", str(home))
    assert_one_line_error(p, EXIT_USAGE, "would delete 1 files", "notes.txt", "--force")
    assert (home / "notes.txt").exists()
    p = run("restore", "--src", bk, "--dst", str(home), "--force", "--progress", "off")
    assert p.returncode == 0 and not (home / "notes.txt").exists()


def test_api_refuses_the_mix_too(snapshot_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="two sources"):
        snapferry.backup(f"fs://{tmp_path / 'bk'}", str(snapshot_tree), storage_data_path=str(tmp_path))
