from __future__ import annotations

import re
from pathlib import Path

import pytest

import snapferry
from snapferry.errors import EXIT_BAD_BACKUP, EXIT_USAGE, BadBackupError, UsageError
from tests.conftest import tree_digest, write_random
from tests.servers import S3Server
from tests.test_cli import assert_one_line_error, run

MIB = 1024 * 1024


def test_copy_syncs_and_marks_complete(snapshot_tree: Path, tmp_path: Path) -> None:
    src = f"fs://{tmp_path / 'a'}"
    dst = tmp_path / "b"
    snapferry.backup(src, str(snapshot_tree), max_part_size=MIB, progress="off")
    write_random(dst / "extra" / "0000000000000001_0000000000000000_0000000000000001", 1, 1)
    res = snapferry.copy(src, f"fs://{dst}", progress="off")
    assert res.server_side and res.parts_deleted == 1
    assert tree_digest(tmp_path / "a") == tree_digest(dst)
    again = snapferry.copy(src, f"fs://{dst}", progress="off")
    assert again.parts_copied == 2  # only parts.json and appliedRetention.txt
    out = tmp_path / "out"
    snapferry.restore(f"fs://{dst}", str(out), progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)


def test_copy_refuses_incomplete_source(snapshot_tree: Path, tmp_path: Path) -> None:
    src = tmp_path / "a"
    snapferry.backup(f"fs://{src}", str(snapshot_tree), progress="off")
    (src / "backup_complete.ignore").unlink()
    with pytest.raises(BadBackupError, match="incomplete"):
        snapferry.copy(f"fs://{src}", f"fs://{tmp_path / 'b'}", progress="off")
    assert not (tmp_path / "b").exists()


def test_copy_of_a_backup_with_no_parts_does_not_wipe_the_destination(snapshot_tree: Path, tmp_path: Path) -> None:
    """A source of markers only (a vmbackup pointed at a parent prefix leaves one) is refused
    before the destination's backup is touched (exit 3), as restore refuses to empty a target."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "backup_complete.ignore").write_bytes(b"")
    dst = tmp_path / "b"
    snapferry.backup(f"fs://{dst}", str(snapshot_tree), progress="off")
    before = tree_digest(dst)
    proc = run("copy", "--src", f"fs://{empty}", "--dst", f"fs://{dst}")
    assert_one_line_error(proc, EXIT_BAD_BACKUP, "holds no parts", str(empty))
    assert tree_digest(dst) == before


# --- names from a remote never escape, places never overlap (issue 9, items 1, 2, 8) ---

HOSTILE_PART = "0000000000000009_0000000000000000_0000000000000009"


def _s3_flags(opts: snapferry.RemoteOptions) -> list[str]:
    return ["--custom-s3-endpoint", str(opts.custom_s3_endpoint), "--creds-file-path", str(opts.creds_file_path),
            "--config-file-path", str(opts.config_file_path)]


def _backup_on(server: S3Server, prefix: str, tree: Path) -> tuple[str, str, snapferry.RemoteOptions]:
    """A backup of tree in a fresh bucket of server: its URL, bucket and options."""
    url, opts = server.new_remote(prefix)
    snapferry.backup(url, str(tree), remote_options=opts, max_part_size=MIB, progress="off")
    return url, url.split("://", 1)[1].split("/", 1)[0], opts


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_copy_of_a_hostile_source_key_writes_nothing_outside_dst(
    moto_server: S3Server, snapshot_tree: Path, tmp_path: Path
) -> None:
    url, bucket, opts = _backup_on(moto_server, "backup", snapshot_tree)
    # moto (like AWS) keeps this key; relative to the backup root its path climbs out twice.
    moto_server.raw_put(bucket, f"backup/../../x/{HOSTILE_PART}", b"123456789")
    out = tmp_path / "out"
    dst = out / "a" / "b" / "dst"
    dst.parent.mkdir(parents=True)
    p = run("copy", "--src", url, "--dst", f"fs://{dst}", "--progress", "off", *_s3_flags(opts))
    assert_one_line_error(p, EXIT_BAD_BACKUP, url, "../../x", "unsafe path")
    assert not (out / "a" / "x").exists()
    assert all(f.startswith("a/b/dst") or f in ("a", "a/b") for f in _files(out)), _files(out)


@pytest.mark.parametrize("action", ["copy", "backup"])
def test_a_hostile_key_in_the_destination_is_not_deleted_through(
    moto_server: S3Server, snapshot_tree: Path, tmp_path: Path, action: str
) -> None:
    src = f"fs://{tmp_path / 'a'}"
    snapferry.backup(src, str(snapshot_tree), max_part_size=MIB, progress="off")
    victim = moto_server.new_bucket()
    moto_server.raw_put(victim, HOSTILE_PART, b"victim!!!")
    url, opts = moto_server.new_remote("backup")
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    hostile = f"backup/../../{victim}/{HOSTILE_PART}"
    moto_server.raw_put(bucket, hostile, b"123456789")
    with pytest.raises(BadBackupError, match=f"{url}: .*unsafe path"):
        if action == "copy":
            snapferry.copy(src, url, remote_options=opts, progress="off")
        else:
            snapferry.backup(url, str(snapshot_tree), remote_options=opts, progress="off")
    # Nothing was deleted: neither the hostile key nor what a normalised path would reach.
    assert moto_server.raw_get(bucket, hostile) == b"123456789"
    assert moto_server.raw_get(victim, HOSTILE_PART) == b"victim!!!"


def test_copy_refuses_the_same_place_under_another_name(snapshot_tree: Path, tmp_path: Path) -> None:
    a = tmp_path / "a"
    snapferry.backup(f"fs://{a}", str(snapshot_tree), max_part_size=MIB, progress="off")
    before = tree_digest(a)
    (tmp_path / "link").symlink_to(a)
    for dst in (f"fs://{tmp_path / 'link'}", f"fs://{tmp_path}/x/../a/", f"fs://{a}"):
        with pytest.raises(UsageError, match="same place"):
            snapferry.copy(f"fs://{a}", dst, progress="off")
    assert tree_digest(a) == before


def test_copy_refuses_nesting_both_ways_on_fs(snapshot_tree: Path, tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    snapferry.backup(f"fs://{inner}", str(snapshot_tree), max_part_size=MIB, progress="off")
    before = tree_digest(inner)
    with pytest.raises(UsageError, match="--src is inside --dst"):
        snapferry.copy(f"fs://{inner}", f"fs://{outer}", progress="off")
    (tmp_path / "alias").symlink_to(outer)
    with pytest.raises(UsageError, match="--dst is inside --src"):
        snapferry.copy(f"fs://{tmp_path / 'alias' / 'inner'}", f"fs://{inner}/deeper", progress="off")
    assert tree_digest(inner) == before
    p = run("copy", "--src", f"fs://{inner}", "--dst", f"fs://{outer}", "--progress", "off")
    assert_one_line_error(p, EXIT_USAGE, f"fs://{inner}", f"fs://{outer}")
    assert tree_digest(inner) == before


def test_copy_refuses_nested_prefixes_on_s3(
    seaweedfs: S3Server, snapshot_tree: Path, tmp_path: Path
) -> None:
    url, bucket, opts = _backup_on(seaweedfs, "nest/inner", snapshot_tree)
    for src, dst in ((url, f"s3://{bucket}/nest"), (url, f"{url}/"), (f"s3://{bucket}/nest", url),
                     (url, f"s3://{bucket}")):
        with pytest.raises(UsageError, match=r"--src .* and --dst "):
            snapferry.copy(src, dst, remote_options=opts, progress="off")
    # Whole segments only: nest/inner2 is a different place.
    res = snapferry.copy(url, f"s3://{bucket}/nest/inner2", remote_options=opts, progress="off")
    assert res.server_side
    out = tmp_path / "out"
    snapferry.restore(url, str(out), remote_options=opts, progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)


@pytest.mark.parametrize("kind", ["fs", "s3-seaweedfs"])
def test_backup_and_copy_refuse_a_destination_holding_another_backup(
    kind: str, request: pytest.FixtureRequest, snapshot_tree: Path, tmp_path: Path
) -> None:
    if kind == "fs":
        top, opts = f"fs://{tmp_path / 'vm'}", snapferry.RemoteOptions()
    else:
        server: S3Server = request.getfixturevalue("seaweedfs")
        top, opts = server.new_remote("vm")
    daily = f"{top}/daily"
    other = f"{top}-other"
    snapferry.backup(daily, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    snapferry.backup(other, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    with pytest.raises(UsageError, match=f"another backup below it, {re.escape(daily)}"):
        snapferry.backup(top, str(snapshot_tree), remote_options=opts, max_part_size=MIB, progress="off")
    with pytest.raises(UsageError, match=f"another backup below it, {re.escape(daily)}"):
        snapferry.copy(other, top, remote_options=opts, progress="off")
    out = tmp_path / "out"
    snapferry.restore(daily, str(out), remote_options=opts, progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)
    if kind == "fs":
        p = run("backup", "--src", str(snapshot_tree), "--dst", top, "--progress", "off")
        assert_one_line_error(p, EXIT_USAGE, daily)


def test_backup_refuses_an_origin_overlapping_dst(snapshot_tree: Path, tmp_path: Path) -> None:
    old = tmp_path / "top" / "old"
    snapferry.backup(f"fs://{old}", str(snapshot_tree), max_part_size=MIB, progress="off")
    before = tree_digest(old)
    with pytest.raises(UsageError, match=r"--origin .* --dst .* --origin is inside --dst"):
        snapferry.backup(f"fs://{old.parent}", str(snapshot_tree), origin=f"fs://{old}", progress="off")
    with pytest.raises(UsageError, match="same place"):
        snapferry.backup(f"fs://{old}", str(snapshot_tree), origin=f"fs://{old}/", progress="off")
    assert tree_digest(old) == before
