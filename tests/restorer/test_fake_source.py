"""The downloader driven by a fake in-memory source (as restic's filerestorer_test.go drives
its file restorer): many files, multi-part files, a source that fails mid-range, wrong
bytes, a stopped run. The target is a real directory; only the backup is in memory.
The source's reads go through the retry layer's resuming reader, as a remote's do."""

from __future__ import annotations

import random
import re
import threading
import zlib
from pathlib import Path

import pytest

from snapferry.errors import BadBackupError, TransientRemoteError
from snapferry.parts import Part
from snapferry.progress import Progress
from snapferry.remotes.base import Reader
from snapferry.remotes.retrying import resuming
from snapferry.restorer.downloader import Downloader, Tuning
from snapferry.restorer.planner import FileMode, FilePlan
from snapferry.restorer.session import RestoreSession
from snapferry.retry import RetryPolicy
from snapferry.throttle import Throttle

KIB = 1024
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, jitter=0.0)


class _Reader:
    def __init__(self, src: FakeSource, part: Part, offset: int, length: int) -> None:
        self._src, self._part, self._pos, self._end = src, part, offset, offset + length

    def readinto(self, buf: memoryview) -> int:
        fail_at = self._src.fail_at.get(self._part.name)
        n = min(len(buf), self._end - self._pos, 7 * KIB)  # short reads, as sockets give
        left = self._src.failures_left.get(self._part.name, 0)
        if fail_at is not None and left != 0 and self._pos <= fail_at < self._pos + max(n, 1):
            n = fail_at - self._pos  # the bytes before the break arrive, then the connection resets
            if n == 0:
                self._src.failures_left[self._part.name] = left - 1
                raise TransientRemoteError("connection reset by peer")
        data = self._src.data[self._part.name][self._pos : self._pos + n]
        if self._part.name in self._src.corrupt and self._src.corrupt[self._part.name] != 0:
            self._src.corrupt[self._part.name] -= 1
            data = bytes(b ^ 0xFF for b in data)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        pass


class FakeSource:
    """Parts held in memory; `read` is what the downloader gets instead of a Remote."""

    def __init__(self, files: dict[str, bytes], part_size: int) -> None:
        self.data: dict[str, bytes] = {}
        self.plans: list[FilePlan] = []
        self.files = files
        for path, body in sorted(files.items()):
            parts = [
                Part(path, len(body), off, min(part_size, len(body) - off), min(part_size, len(body) - off))
                for off in range(0, max(len(body), 1), part_size)
            ]
            for p in parts:
                self.data[p.name] = body[p.offset : p.end]
            self.plans.append(FilePlan(path, len(body), parts, FileMode.NEW, has_journal=len(parts) > 1,
                                       all_parts=parts))
        self.reads: list[tuple[str, int, int]] = []
        self.fail_at: dict[str, int] = {}  # part name -> byte offset in the part where reads break
        self.failures_left: dict[str, int] = {}  # -1: always
        self.corrupt: dict[str, int] = {}  # part name -> how many reads come back with flipped bytes
        self.on_read: list[threading.Event] = []
        self._lock = threading.Lock()

    def read(self, part: Part, offset: int, length: int) -> _Reader:
        with self._lock:
            self.reads.append((part.name, offset, length))
        return _Reader(self, part, offset, length)

    def retried_read(self, part: Part, offset: int, length: int) -> Reader:
        """read() under the retry layer (remotes/retrying.py), as RetryingRemote.open_part is."""
        return resuming(lambda at, n: self.read(part, at, n), offset, length, FAST_RETRY,
                        f"the body of {part.name} from fake://backup", part.size)

    def crcs(self) -> dict[str, list[int]]:
        return {name: [zlib.crc32(body)] for name, body in self.data.items()}  # every part < one 16 MiB block


def _files(rng: random.Random, count: int, max_size: int) -> dict[str, bytes]:
    return {f"data/p{i // 5:03d}/f{i % 5}.bin": rng.randbytes(rng.randrange(0, max_size)) for i in range(count)}


def _run(src: FakeSource, root: Path, *, expected: dict[str, list[int]] | None = None,
         tuning: Tuning | None = None) -> Downloader:
    session = RestoreSession(str(root))
    dl = Downloader(src.retried_read, session, src.plans, tuning or Tuning(concurrency=4, block_size=16 * KIB,
                    max_inflight_bytes=64 * KIB), Throttle(0), Progress("restore", 0, "off"),
                    expected, source="fake://backup")
    dl.run()
    return dl


def _assert_tree(root: Path, files: dict[str, bytes]) -> None:
    got = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert got == files


def test_many_small_and_multi_part_files_land_byte_identical(tmp_path: Path) -> None:
    rng = random.Random(1)
    files = _files(rng, 60, 40 * KIB)
    files["big/multi.bin"] = rng.randbytes(100 * KIB + 5)
    src = FakeSource(files, part_size=16 * KIB)
    assert max(len(p.parts) for p in src.plans) > 1
    _run(src, tmp_path)
    _assert_tree(tmp_path, files)
    assert len({(name, off) for name, off, _ in src.reads}) == len(src.reads)  # each range once


def test_a_source_that_fails_mid_range_once_is_resumed_from_the_missing_byte(tmp_path: Path) -> None:
    files = {"a.bin": random.Random(2).randbytes(50 * KIB)}
    src = FakeSource(files, part_size=64 * KIB)
    name = src.plans[0].parts[0].name
    src.fail_at[name], src.failures_left[name] = 20 * KIB + 3, 1
    _run(src, tmp_path)
    _assert_tree(tmp_path, files)
    # Resumed at the first byte that did not arrive: no byte is downloaded twice.
    assert [(off, length) for _, off, length in src.reads] == [(0, 50 * KIB), (20 * KIB + 3, 30 * KIB - 3)]


def test_a_source_that_always_fails_mid_range_stops_the_restore_naming_the_part(tmp_path: Path) -> None:
    files = {"a.bin": random.Random(3).randbytes(50 * KIB), "b.bin": b"x" * 100}
    src = FakeSource(files, part_size=64 * KIB)
    name = src.plans[0].parts[0].name
    src.fail_at[name], src.failures_left[name] = 20 * KIB, -1
    with pytest.raises(TransientRemoteError, match=rf"reading {re.escape(name)} from fake://backup kept failing"):
        _run(src, tmp_path)
    assert not (tmp_path / "a.bin").exists()  # never renamed into place
    # The first read made progress; then every attempt fails at once, until the policy's limit.
    assert sum(1 for n, _, _ in src.reads if n == name) == FAST_RETRY.attempts


def test_wrong_bytes_are_fetched_again_and_land_right(tmp_path: Path) -> None:
    files = {"a.bin": random.Random(4).randbytes(30 * KIB)}
    src = FakeSource(files, part_size=64 * KIB)
    name = src.plans[0].parts[0].name
    src.corrupt[name] = 1  # the first read of the part comes back flipped
    _run(src, tmp_path, expected=src.crcs())
    _assert_tree(tmp_path, files)
    assert [n for n, _, _ in src.reads] == [name, name]


def test_bytes_wrong_every_time_stop_the_restore_before_the_rename(tmp_path: Path) -> None:
    files = {"a.bin": random.Random(5).randbytes(30 * KIB)}
    src = FakeSource(files, part_size=64 * KIB)
    name = src.plans[0].parts[0].name
    src.corrupt[name] = -1
    with pytest.raises(BadBackupError, match=r"a\.bin.*does not match the backup's checksums"):
        _run(src, tmp_path, expected=src.crcs())
    assert not (tmp_path / "a.bin").exists()


def test_a_stopped_run_reads_no_more_and_renames_nothing_unfinished(tmp_path: Path) -> None:
    files = _files(random.Random(6), 40, 8 * KIB)
    src = FakeSource(files, part_size=64 * KIB)
    holder: list[Downloader] = []
    real_read = src.read

    def read_then_stop(part: Part, offset: int, length: int) -> _Reader:
        if len(src.reads) == 10:
            holder[0].stop.set()  # what a signal or another thread's failure does
        return real_read(part, offset, length)

    session = RestoreSession(str(tmp_path))
    dl = Downloader(read_then_stop, session, src.plans, Tuning(concurrency=2), Throttle(0),
                    Progress("restore", 0, "off"), source="fake://backup")
    holder.append(dl)
    dl.run()
    assert 10 <= len(src.reads) <= 10 + 2  # after the stop, at most one more read per worker
    done = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.bin")}
    assert len(done) < len(files)
    for rel in done:  # whatever reached its final name is whole
        assert (tmp_path / rel).read_bytes() == files[rel]


def test_only_a_range_that_failed_builds_a_retry_loop_and_it_keeps_the_policys_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A retry loop per range was a fifth of the CPU of restoring many small files.
    from snapferry import retry

    built: list[RetryPolicy] = []
    real = retry.retrying

    def counting(policy: RetryPolicy, *a: object, **kw: object) -> object:
        built.append(policy)
        return real(policy, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(retry, "retrying", counting)
    files = _files(random.Random(8), 30, 4 * KIB)
    files["a.bin"] = random.Random(9).randbytes(20 * KIB)
    src = FakeSource(files, part_size=64 * KIB)
    name = next(p.parts[0].name for p in src.plans if p.path == "a.bin")
    src.fail_at[name], src.failures_left[name] = 0, FAST_RETRY.attempts - 1  # the last attempt succeeds
    _run(src, tmp_path)
    _assert_tree(tmp_path, files)
    assert built == [FAST_RETRY]
    assert sum(1 for n, _, _ in src.reads if n == name) == FAST_RETRY.attempts


class _CountingLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.takes = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self.takes += 1

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _counted_run(src: FakeSource, root: Path, tuning: Tuning) -> int:
    root.mkdir()
    dl = Downloader(src.retried_read, RestoreSession(str(root)), src.plans, tuning, Throttle(0),
                    Progress("restore", 0, "off"), source="fake://backup")
    lock = _CountingLock()
    dl._jobs_lock = lock  # type: ignore[assignment]
    dl.run()
    return lock.takes


def test_workers_take_small_files_several_at_once_and_big_ranges_one_by_one(tmp_path: Path) -> None:
    files = _files(random.Random(10), 400, 4 * KIB)
    takes = _counted_run(FakeSource(files, part_size=64 * KIB), tmp_path / "small", Tuning(concurrency=4))
    _assert_tree(tmp_path / "small", files)
    # A take per 8 files (Tuning.small_jobs_per_take; one per file before), plus the empty take that ends
    # each worker, plus one short take per worker at most.
    assert takes <= 400 // 8 + 4 + 4
    big = {"big.bin": random.Random(11).randbytes(4 * 1024 * KIB)}
    tuning = Tuning(concurrency=4, chunk_size=512 * KIB, block_size=64 * KIB, max_inflight_bytes=512 * KIB)
    takes = _counted_run(FakeSource(big, part_size=8 * 1024 * KIB), tmp_path / "big", tuning)
    _assert_tree(tmp_path / "big", big)
    assert takes == 8 + 4  # each 512 KiB range its own job, so all workers share the part
