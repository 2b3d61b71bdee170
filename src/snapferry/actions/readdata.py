"""verify --read-data: a backup's parts read as a restore reads them, minus the writes.

Its own module, loaded only by a verify that reads data: it brings the restorer's buffer
pool, which a --structure-only run (a start-up-sized job) never needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from ..checksums import BLOCK, crc32
from ..errors import SnapferryError, TransientRemoteError
from ..findings import Problem, ProblemKind
from ..parts import Part
from ..progress import Progress
from ..remotes.base import Remote
from ..settings import RunSettings
from ..workers import parallel

_MIB = 1024 * 1024


def _range_size(part: Part, concurrency: int, min_range: int) -> int:
    """As the restore cuts a part (Downloader._chunk_size): evenly over the workers, at least
    `min_range`, whole MiB, then whole manifest blocks so each range checks its blocks alone."""
    even = -(-part.size // max(1, concurrency))
    step = max(min_range, -(-even // _MIB) * _MIB)
    return -(-step // BLOCK) * BLOCK


def _jobs(parts: list[Part], concurrency: int, min_range: int) -> Iterator[tuple[Part, int, int]]:
    for p in sorted(parts, key=lambda p: -p.size):
        if p.size == 0:
            yield p, 0, 0
        step = _range_size(p, concurrency, min_range)
        for off in range(0, p.size, step):
            yield p, off, min(step, p.size - off)


def read_parts_data(
    src: Remote, parts: list[Part], entries: Mapping[str, list[int]], settings: RunSettings,
    add: Callable[[Problem], None], stop: threading.Event,
) -> None:
    """Read the parts' bytes as the restore does, minus the writes: ranges on `concurrency`
    threads, each read into a block of the restorer's pool (bounded like a restore's memory),
    the block's bytes CRC'd in place and the block handed back."""
    from ..remotes.base import read_full
    from ..restorer.downloader import Tuning
    from ..restorer.pool import BufferPool
    concurrency, throttle = settings.concurrency, settings.throttle()
    tuning = Tuning(concurrency=concurrency)
    pool = BufferPool(tuning.block_size, tuning.max_inflight_bytes // tuning.block_size, stop)
    lock = threading.Lock()
    total = sum(p.size for p in parts)
    with Progress("verify", total, settings.progress) as progress:

        def one(job: tuple[Part, int, int]) -> None:
            p, off, length = job
            if length == 0:
                return
            end = off + length
            want = entries.get(p.name)
            crcs: list[int] = []
            pos, block_crc = off, 0  # next byte, CRC of its block so far
            # A read cut short resumes inside the remote's retry layer, from its first missing byte.
            reader = src.open_part(p, off, length)
            try:
                while pos < end:
                    buf = pool.get()
                    try:
                        # a buffer never spans two manifest blocks
                        n_want = min(len(buf), end - pos, BLOCK - pos % BLOCK)
                        with memoryview(buf) as mv:
                            n = read_full(reader, mv[:n_want])
                            block_crc = crc32(mv[:n], block_crc)
                    finally:
                        pool.put(buf)
                    if n < n_want:
                        raise _short(p, pos + n, src)
                    throttle.take(n, stop)
                    pos += n
                    progress.add(n)
                    if pos % BLOCK == 0 or pos == p.size:
                        crcs.append(block_crc)
                        block_crc = 0
            finally:
                reader.close()
            if want is None:
                return
            first = off // BLOCK
            for i, got in enumerate(crcs):
                idx = first + i
                exp = want[idx] if idx < len(want) else None
                if exp != got:
                    with lock:
                        add(Problem(p.name, ProblemKind.CONTENT,
                                    f"block {idx} crc32 {exp:08x}" if exp is not None else f"no block {idx}",
                                    f"crc32 {got:08x}"))

        parallel(concurrency, list(_jobs(parts, concurrency, tuning.min_chunk_size)), one, stop)


def _short(p: Part, at: int, src: Remote) -> SnapferryError:
    return TransientRemoteError(f"the body of {p.name} from {src.url} ended early at byte {at} of {p.size}")
