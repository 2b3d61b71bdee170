"""The one overlap rule every action uses (remotes/location.py), on real paths and real URLs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from snapferry.errors import UsageError
from snapferry.remotes import open_remote
from snapferry.remotes.location import (
    Location,
    local_location,
    location_of,
    object_location,
    overlaps,
    refuse_overlap,
    within,
)


def cloud(prefix: str, bucket: str = "b", endpoint: str = "http://127.0.0.1:8333") -> Location:
    return object_location(f"s3://{bucket}/{prefix}", endpoint, bucket, prefix)


def test_object_store_prefixes_overlap_by_whole_segments() -> None:
    assert within(cloud("vm/daily"), cloud("vm"))
    assert not within(cloud("vm"), cloud("vm/daily"))
    assert overlaps(cloud("vm"), cloud("vm/daily")) and overlaps(cloud("vm/daily"), cloud("vm"))
    assert overlaps(cloud("x"), cloud("x"))
    assert not overlaps(cloud("vm"), cloud("vm2"))
    assert not overlaps(cloud("a/bc"), cloud("a/b"))
    assert within(cloud("anything/below"), cloud(""))  # the whole bucket holds every prefix
    assert cloud("x/").path == "x" and overlaps(cloud("x/"), cloud("x"))
    assert not overlaps(cloud("x"), cloud("x", bucket="c"))
    assert not overlaps(cloud("x"), cloud("x", endpoint="http://127.0.0.1:9000"))


def test_object_store_spellings_of_one_place_are_the_same_place() -> None:
    assert overlaps(cloud("x", endpoint="HTTP://127.0.0.1:8333/"), cloud("x", endpoint="http://127.0.0.1:8333"))
    assert overlaps(cloud("x", endpoint="https://s3.example.com:443"), cloud("x", endpoint="https://s3.example.com"))
    assert overlaps(cloud("x", endpoint="https://s3.eu-west-1.amazonaws.com"),
                    cloud("x/y", endpoint="https://s3.us-east-1.amazonaws.com"))


def test_fs_locations_see_symlinks_dot_dot_and_bind_aliases(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    assert overlaps(local_location(str(real)), local_location(str(tmp_path / "link")))
    assert within(local_location(str(tmp_path / "link" / "inner")), local_location(str(real)))
    assert within(local_location(f"{tmp_path}/x/../real/inner/"), local_location(str(real)))
    assert within(local_location(str(real / "not-yet" / "deeper")), local_location(str(real)))
    assert not overlaps(local_location(str(real)), local_location(str(tmp_path / "real2")))
    # fs:// remotes and local directories answer the same question.
    fs = location_of(open_remote(f"fs://{tmp_path}/link"))
    assert fs.url == f"fs://{tmp_path}/link" and overlaps(fs, local_location(str(real / "inner")))


def test_fs_alias_by_bind_mount(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "inner").mkdir(parents=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    assert os.geteuid() == 0, "bind mounts need root"
    subprocess.run(["mount", "--bind", str(real), str(mnt)], check=True)
    try:
        assert (mnt / "inner").is_dir()  # the same directory under a second name
        assert overlaps(local_location(str(mnt / "inner")), local_location(str(real)))
        assert within(local_location(str(mnt / "inner" / "new")), local_location(str(real / "inner")))
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_refusal_names_both_places() -> None:
    with pytest.raises(UsageError, match=r"--src s3://b/vm/daily and --dst s3://b/vm overlap: --src is inside"):
        refuse_overlap(cloud("vm/daily"), cloud("vm"))
    refuse_overlap(cloud("vm/daily"), cloud("vm/weekly"))
