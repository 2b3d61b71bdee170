"""Both data paths of the downloader on real files: zero-copy and the buffered stream."""

from __future__ import annotations

from pathlib import Path

import pytest

import snapferry
from snapferry.errors import RemoteError, TransientRemoteError
from snapferry.restorer.downloader import Tuning
from snapferry.retry import RetryPolicy
from tests.conftest import tree_digest

MIB = 1024 * 1024


@pytest.fixture
def backup_dir(snapshot_tree: Path, tmp_path: Path) -> Path:
    snapferry.backup(f"fs://{tmp_path / 'bk'}", str(snapshot_tree), max_part_size=MIB, progress="off")
    return tmp_path / "bk"


@pytest.mark.parametrize("zero_copy", [True, False])
@pytest.mark.parametrize("inplace", [True, False])
def test_small_chunks_and_tiny_pool(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path, zero_copy: bool, inplace: bool
) -> None:
    # Ranges smaller than parts, blocks smaller than ranges, a pool of two blocks:
    # every hand-off between downloaders and writers is exercised.
    tuning = Tuning(concurrency=3, writers=2, chunk_size=300_000, block_size=64 * 1024,
                    max_inflight_bytes=128 * 1024, zero_copy=zero_copy)
    out = tmp_path / "out"
    snapferry.restore(f"fs://{backup_dir}", str(out), tuning=tuning, skip_file_preallocation=inplace,
                      progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)


@pytest.mark.parametrize("direct_min", [0, 1], ids=["page-cache", "direct"])
@pytest.mark.parametrize("inplace", [True, False])
def test_the_buffered_stream_with_and_without_direct_io(
    snapshot_tree: Path, backup_dir: Path, tmp_path: Path, direct_min: int, inplace: bool
) -> None:
    # Aligned ranges and blocks, so direct writes carry everything but the files' tails.
    tuning = Tuning(concurrency=3, writers=2, chunk_size=256 * 1024, block_size=64 * 1024,
                    max_inflight_bytes=256 * 1024, zero_copy=False, direct_min=direct_min)
    out = tmp_path / "out"
    snapferry.restore(f"fs://{backup_dir}", str(out), tuning=tuning, skip_file_preallocation=inplace,
                      progress="off")
    assert tree_digest(out) == tree_digest(snapshot_tree)


@pytest.mark.parametrize("zero_copy", [True, False])
def test_part_shorter_than_its_listing_is_never_written_as_whole(
    backup_dir: Path, tmp_path: Path, zero_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snapferry.remotes.fs import FsRemote

    victim = sorted(backup_dir.glob("data/small/2026_11/17A3F0C2D1E50050/values.bin/*"))[1]
    real_list = FsRemote.list_parts

    def list_then_truncate(self: FsRemote) -> list[snapferry.Part]:
        parts = real_list(self)
        victim.write_bytes(victim.read_bytes()[: MIB // 2])  # truncated after listing
        return parts

    monkeypatch.setattr(FsRemote, "list_parts", list_then_truncate)
    tuning = Tuning(concurrency=2, chunk_size=MIB, zero_copy=zero_copy)
    with pytest.raises((RemoteError, TransientRemoteError), match=r"ended early|shorter"):
        snapferry.restore(f"fs://{backup_dir}", str(tmp_path / "out"), tuning=tuning, progress="off",
                          retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.01))
    assert not list((tmp_path / "out").rglob("values.bin"))  # never renamed into place
