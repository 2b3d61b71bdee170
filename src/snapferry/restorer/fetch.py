"""One range of one part, from the backup into a target file: streamed and checked.

A transient failure of the read is no concern of this module: the backup's remote
carries the run's retry layer (remotes/retrying.py), whose reader resumes a cut
body from its first missing byte. What is retried here is of another kind: a block
whose bytes arrived but fail the manifest's CRC (CHECK_ATTEMPTS, below).

`RangeFetcher` takes only what it needs of the backup: `read(part, offset, length)`
returning a Reader, and optionally `local_path(part)` for an in-kernel copy from an
fs:// part (restic's filerestorer takes one download function the same way), so it
is unit-tested with a fake in-memory source (tests/restorer/test_fetch.py).
"""

from __future__ import annotations

import logging
import mmap
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..checksums import BLOCK, crc32
from ..durable import copy_range
from ..errors import BadBackupError, RemoteError, TransientRemoteError
from ..parts import Part
from ..progress import Progress
from ..remotes.base import FileReader, Reader, read_full
from ..throttle import Throttle
from .bytepath import BytePath
from .pool import BufferPool, Stopped
from .writer import TargetFile, io_error

log = logging.getLogger("snapferry")

# Downloads of a range whose bytes keep failing their manifest CRC: a data-integrity retry
# of the restorer, not a remote retry, so it is not --retries and not in the retry layer.
# The remote answered each time (nothing transient to wait out); the question is whether
# the object or the transfer is corrupt. A corrupt object fails every time, a corrupt
# transfer rarely twice: two more downloads tell them apart, and the restore then stops
# (exit 3) whatever --retries says.
CHECK_ATTEMPTS = 3

ReadFn = Callable[[Part, int, int], Reader]
LocalPathFn = Callable[[Part], "str | None"]


@dataclass(slots=True)
class Chunk:
    file: TargetFile
    part: Part
    offset: int  # within the part
    length: int
    crcs: list[int] | None = None  # the part's manifest entry: its bytes are checked in memory
    pending: int = 0  # blocks handed to the writers and not yet written (under RangeFetcher.written)


class Mismatch(Exception):
    """A manifest block of a range came in with the wrong CRC32 (the range is fetched again)."""

    def __init__(self, part: Part, block: int, want: int, got: int) -> None:
        super().__init__(f"block {block} of {part.name}: CRC32 {got:08x}, the manifest says {want:08x}")
        self.part, self.block, self.want, self.got = part, block, want, got


@dataclass(eq=False)
class RangeFetcher:
    """Streams ranges into target files for the downloader's worker threads."""

    read: ReadFn
    source: str  # the backup's URL, for messages
    local_path: LocalPathFn | None
    pool: BufferPool
    throttle: Throttle
    progress: Progress
    stop: threading.Event
    account: Callable[[TargetFile, Part, int], None]
    block_size: int = field(init=False)
    # Blocks for the writer threads; None tells one writer to end.
    writeq: queue.SimpleQueue[tuple[Chunk, int, mmap.mmap, int] | None] = field(
        init=False, default_factory=queue.SimpleQueue)
    written: threading.Condition = field(init=False, default_factory=threading.Condition)  # guards Chunk.pending

    def __post_init__(self) -> None:
        self.block_size = self.pool.block_size

    def local_source(self, part: Part, tf: TargetFile) -> str | None:
        """The local file to copy_file_range the part from (in-kernel byte path), or None."""
        if tf.byte_path is not BytePath.IN_KERNEL or self.local_path is None:
            return None
        return self.local_path(part)

    def write(self, chunk: Chunk, pos: int, data: memoryview) -> None:
        tf = chunk.file
        try:
            tf.pwrite(data, chunk.part.offset + pos)
        except OSError as e:
            raise io_error(e, tf.plan.path) from e
        self.account(tf, chunk.part, len(data))

    def copy_local(self, c: Chunk, src: str) -> None:
        try:
            sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RemoteError(f"cannot read {c.part.name} from {self.source}: {e.strerror}") from e
        try:
            step = 16 * 1024 * 1024
            pos = c.offset
            end = c.offset + c.length
            while pos < end:
                if self.stop.is_set():
                    raise Stopped()
                want = min(step, end - pos)
                self.throttle.take(want, self.stop)
                try:
                    n = copy_range(sfd, pos, c.file.fd, c.part.offset + pos, want)
                except OSError as e:
                    raise io_error(e, c.file.plan.path) from e
                if n != want:
                    raise RemoteError(
                        f"{c.part.name} in {self.source} is shorter than its name says; "
                        "rerun the backup to repair it"
                    )
                pos += n
                self.account(c.file, c.part, n)
        finally:
            os.close(sfd)

    def hand_over(self, c: Chunk, pos: int, buf: mmap.mmap, n: int, inline: bool) -> None:
        """Write n bytes of buf at pos of the part: here (inline) or on a writer thread."""
        if inline:
            try:
                self.write(c, pos, memoryview(buf)[:n])
            finally:
                self.pool.put(buf)
        else:
            with self.written:
                c.pending += 1
            self.writeq.put((c, pos, buf, n))

    def download(self, c: Chunk, inline: bool) -> None:
        """Stream a range; on a block whose CRC is wrong fetch that block again; a block
        wrong every time is a corrupt part: the restore stops (exit 3) before the file is
        complete. (A transient error reaching here has used up the retry layer's attempts.)"""
        # next byte within the part, CRC32 of its manifest block so far
        state = [c.offset, 0]
        for check in range(CHECK_ATTEMPTS):
            try:
                self._stream(c, state, inline)
                return
            except TransientRemoteError as e:
                if c.part.name in str(e):
                    raise
                # A source whose errors do not say what was read: the message must.
                raise TransientRemoteError(
                    f"reading {c.part.name} from {self.source} kept failing ({e}); rerun the restore to resume"
                ) from e
            except Mismatch as e:
                if check + 1 < CHECK_ATTEMPTS:
                    log.warning("%s from %s; fetching the block again", e, self.source)
                    continue
                raise BadBackupError(
                    f"{c.part.name} in {self.source} does not match the backup's checksums ({e}, "
                    f"{CHECK_ATTEMPTS} downloads): the part is corrupt in the store; nothing was renamed "
                    "into place; run `snapferry verify` on the backup and make a new one"
                ) from None

    def _stream(self, c: Chunk, state: list[int], inline: bool) -> None:
        end = c.offset + c.length
        if state[0] >= end:
            return
        want_crcs = c.crcs
        reader = self.read(c.part, state[0], end - state[0])
        try:
            if c.file.byte_path is BytePath.IN_KERNEL and want_crcs is None and isinstance(reader, FileReader):
                self._stream_to_file(c, state, end, reader)
                return
            while state[0] < end:
                buf = self.pool.get()
                want = min(len(buf), end - state[0])
                if want_crcs is not None:
                    want = min(want, BLOCK - state[0] % BLOCK)  # a buffer never spans two blocks
                try:
                    n = read_full(reader, memoryview(buf)[:want])
                    if want_crcs is not None and n:
                        self._check(c, state, buf, n, want_crcs, inline)
                except BaseException:
                    self.pool.put(buf)
                    raise
                if n:
                    self.throttle.take(n, self.stop)
                    self.hand_over(c, state[0], buf, n, inline)
                    state[0] += n
                else:
                    self.pool.put(buf)
                if n < want:
                    raise TransientRemoteError(
                        f"the body of {c.part.name} from {self.source} ended early at byte "
                        f"{state[0]} of {c.part.size}"
                    )
                if self.stop.is_set():
                    raise Stopped()
        finally:
            reader.close()

    def _check(self, c: Chunk, state: list[int], buf: mmap.mmap, n: int, want_crcs: list[int],
               inline: bool) -> None:
        """CRC the n new bytes into their block's running CRC; at the block's end compare it.

        The last bytes of a block are handed over only after this check, so a file whose
        block is wrong can never count as complete (no fsync, no rename, no journal record).
        On a mismatch the block's bytes already handed over are taken back and it is read again."""
        with memoryview(buf) as mv:
            state[1] = crc32(mv[:n], state[1])
        pos = state[0] + n
        if pos % BLOCK and pos != c.part.size:
            return
        idx = (pos - 1) // BLOCK
        want = want_crcs[idx] if idx < len(want_crcs) else -1
        got, state[1] = state[1], 0
        if got == want:
            c.file.checked(c.part, pos - idx * BLOCK)
            return
        start = idx * BLOCK
        with self.written:  # no stale write of the bad block may land after its new bytes
            while c.pending:
                self.written.wait(0.2)
        taken = state[0] - start
        c.file.rewind(c.part, taken)
        self.progress.add(-taken)
        state[0] = start
        raise Mismatch(c.part, idx, want, got)

    def _stream_to_file(self, c: Chunk, state: list[int], end: int, reader: FileReader) -> None:
        """The body goes into the file in the kernel (splice); no buffer from the pool."""
        while state[0] < end:
            try:
                n = reader.read_to_file(c.file.fd, c.part.offset + state[0], min(self.block_size, end - state[0]))
            except OSError as e:
                raise io_error(e, c.file.plan.path) from e
            if not n:
                raise TransientRemoteError(
                    f"the body of {c.part.name} from {self.source} ended early at byte "
                    f"{state[0]} of {c.part.size}"
                )
            self.throttle.take(n, self.stop)
            state[0] += n
            self.account(c.file, c.part, n)
            if self.stop.is_set():
                raise Stopped()
