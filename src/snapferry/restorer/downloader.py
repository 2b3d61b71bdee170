"""The downloader: workers fetch byte ranges, writers put them on disk.

Reading and writing overlap: download workers fill blocks from a shared pool
and hand them to writer threads through a queue. The pool is the only memory
the data path uses, so the bytes in flight are bounded for the whole restore,
not per worker, and blocks are reused rather than reallocated.

Files of at least `direct_min` bytes are written with direct I/O from the
pool's page-aligned blocks (directio.py): no copy into the page cache, no
writeback afterwards; `fs://` parts are read into the pool for them too.
Smaller files, and every file when direct I/O is switched off, are copied in
the kernel instead where the source allows: `fs://` parts by copy_file_range
(a reflink where the filesystem has them), and readers that can splice (s3://
over plain HTTP, remotes/_http.py) from the socket into the file.
"""

from __future__ import annotations

import logging
import mmap
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .. import directio
from ..checksums import BLOCK, crc32
from ..durable import copy_range
from ..errors import BadBackupError, Interrupted, RemoteError, SnapferryError, TransientRemoteError
from ..parts import Part
from ..progress import Progress
from ..remotes.base import FileReader, Reader, Remote
from ..retry import RetryPolicy, retrying
from ..throttle import Cancelled, Throttle
from .bytepath import BytePath, choose_byte_path
from .planner import FileMode, FilePlan
from .session import RestoreSession
from .writer import TargetFile, io_error

log = logging.getLogger("snapferry")

# Downloads of a range whose bytes keep failing their manifest CRC. A corrupt object
# fails every time, a corrupt transfer rarely twice: two more tries tell them apart.
CHECK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Tuning:
    concurrency: int = 4  # download workers
    writers: int = 2  # threads doing pwrite
    finishers: int = 2  # threads doing the per-file fsync and rename, so writes never wait on them
    chunk_size: int = 0  # bytes per ranged request; 0 = a part split evenly over the workers
    min_chunk_size: int = 32 * 1024 * 1024
    block_size: int = 4 * 1024 * 1024  # one buffer of the pool
    max_inflight_bytes: int = 64 * 1024 * 1024  # the pool's total
    zero_copy: bool = True
    # Files this big or bigger are written with O_DIRECT (0 = never); smaller ones are
    # not worth a second descriptor.
    direct_min: int = 64 * 1024


@dataclass(slots=True)
class Chunk:
    file: TargetFile
    part: Part
    offset: int  # within the part
    length: int
    pending: int = 0  # blocks handed to the writers and not yet written (under Downloader._written)


class _Mismatch(Exception):
    """A manifest block of a range came in with the wrong CRC32 (the range is fetched again)."""

    def __init__(self, part: Part, block: int, want: int, got: int) -> None:
        super().__init__(f"block {block} of {part.name}: CRC32 {got:08x}, the manifest says {want:08x}")
        self.part, self.block, self.want, self.got = part, block, want, got


class BufferPool:
    """At most `count` page-aligned blocks, allocated on first use and then reused."""

    def __init__(self, block_size: int, count: int, stop: threading.Event) -> None:
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._stop = stop
        self.block_size = block_size
        self._left = max(2, count)  # blocks not yet allocated
        self._lock = threading.Lock()

    def get(self) -> mmap.mmap:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._left > 0:
                self._left -= 1
                return directio.buffer(self.block_size)
        while True:
            try:
                return self._free.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    raise _Stopped() from None

    def put(self, buf: mmap.mmap) -> None:
        self._free.put(buf)


class _Stopped(Exception):
    """Another thread failed or a signal arrived; stop quietly."""


def read_full(reader: Reader, mv: memoryview) -> int:
    got = 0
    while got < len(mv):
        n = reader.readinto(mv[got:])
        if not n:
            break
        got += n
    return got


class Downloader:
    def __init__(
        self,
        remote: Remote,
        session: RestoreSession,
        files: list[FilePlan],
        tuning: Tuning,
        throttle: Throttle,
        progress: Progress,
        retry: RetryPolicy,
        expected: dict[str, list[int]] | None = None,
        reread: bool = False,
        in_memory: bool = True,
    ) -> None:
        """`expected` holds the manifest's block CRC32s by part name: with `in_memory` every
        byte of those parts is checked before it is written; with `reread` (restore --verify)
        each finished file is also read back before its rename."""
        self.remote = remote
        self._reread = expected if reread else None
        self.expected = (expected or {}) if in_memory else {}
        self._written = threading.Condition()
        self.session = session
        self.root = session.root
        self.files = files
        self.t = tuning
        self.throttle = throttle
        self.progress = progress
        self.retry = retry
        self.stop = threading.Event()
        self.pool = BufferPool(tuning.block_size, tuning.max_inflight_bytes // tuning.block_size, self.stop)
        self.writeq: queue.SimpleQueue[tuple[Chunk, int, mmap.mmap, int] | None] = queue.SimpleQueue()
        self._jobs_lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._open: list[TargetFile] = []
        self._jobs = self._iter_jobs()
        self.finishq: queue.SimpleQueue[TargetFile | None] = queue.SimpleQueue()
        self._dirs_made: set[str] = set()

    @property
    def verified_parts(self) -> int:
        return sum(tf.verified_parts for tf in self._open)

    # -- scheduling -------------------------------------------------------------
    def _iter_jobs(self) -> Iterator[Chunk | TargetFile]:
        for fp in self.files:
            tf = self._target_file(fp)
            self._open.append(tf)
            if fp.mode is FileMode.INPLACE:
                yield tf  # one worker writes it in order: its length is its resume point
                continue
            for p in fp.parts:
                if p.size == 0:
                    yield Chunk(tf, p, 0, 0)
                step = self._chunk_size(p, tf)
                for off in range(0, p.size, step):
                    yield Chunk(tf, p, off, min(step, p.size - off))

    def _target_file(self, fp: FilePlan) -> TargetFile:
        checked = any(p.name in self.expected for p in fp.parts)
        path = choose_byte_path(fp.file_size, self.t.direct_min, self.t.zero_copy, checked)
        return TargetFile(self.root, fp, self.session, path, self._reread, self._dirs_made,
                          self.t.zero_copy, checked)

    def _chunk_size(self, part: Part, tf: TargetFile) -> int:
        """Big parts are cut so every worker gets a range; small ones stay one request,
        since each request costs the server and the client more than its bytes do.

        Parts copied in the kernel are not cut: those copies are CPU-bound, and threads
        copying into one file serialise on its inode lock (perf showed them spinning on it)."""
        if self.t.chunk_size:
            step = self.t.chunk_size
        elif self._local_source(part, tf):
            return max(part.size, 1)
        else:
            even = -(-part.size // max(1, self.t.concurrency))
            step = max(self.t.min_chunk_size, -(-even // (1 << 20)) << 20)
        if part.name in self.expected:
            # Ranges start and end on manifest blocks, so each range checks whole blocks on
            # its own (a running CRC across ranges would order the ranges of a part).
            step = -(-step // BLOCK) * BLOCK
        return step

    def _local_source(self, part: Part, tf: TargetFile) -> str | None:
        """The local file to copy_file_range the part from (fs://, in-kernel byte path), or None."""
        if tf.byte_path is not BytePath.IN_KERNEL:
            return None
        return self.remote.local_path(part)

    def _next_job(self) -> Chunk | TargetFile | None:
        with self._jobs_lock:
            return next(self._jobs, None)

    # -- running ----------------------------------------------------------------
    def run(self) -> None:
        workers = [
            threading.Thread(target=self._worker, name=f"download-{i}", daemon=True)
            for i in range(max(1, self.t.concurrency))
        ]
        writers = [
            threading.Thread(target=self._writer, name=f"write-{i}", daemon=True)
            for i in range(max(1, self.t.writers))
        ]
        finishers = [
            threading.Thread(target=self._finisher, name=f"finish-{i}", daemon=True)
            for i in range(max(1, self.t.finishers))
        ]
        for th in workers + writers + finishers:
            th.start()
        try:
            for th in workers:
                while th.is_alive():
                    th.join(0.2)  # short joins keep signal handlers running
        except BaseException as e:
            self._fail(e)
            for th in workers:
                th.join()
        finally:
            for _ in writers:
                self.writeq.put(None)
            for th in writers:
                th.join()
            for _ in finishers:
                self.finishq.put(None)
            for th in finishers:
                th.join()
            self._close_unfinished()
        if self._errors:
            raise _pick_error(self._errors)

    def _fail(self, e: BaseException) -> None:
        if not isinstance(e, _Stopped | Cancelled):
            self._errors.append(e)
        self.stop.set()

    def _close_unfinished(self) -> None:
        for tf in self._open:
            if not tf.finished:
                tf.abandon()

    def _worker(self) -> None:
        try:
            while not self.stop.is_set():
                job = self._next_job()
                if job is None:
                    return
                if isinstance(job, TargetFile):
                    self._inplace_file(job)
                else:
                    self._chunk(job)
        except BaseException as e:
            self._fail(e)

    def _writer(self) -> None:
        while True:
            item = self.writeq.get()
            if item is None:
                return
            chunk, pos, buf, n = item
            try:
                if not self.stop.is_set():
                    self._write(chunk, pos, memoryview(buf)[:n])
            except BaseException as e:
                self._fail(e)
            finally:
                self.pool.put(buf)
                with self._written:
                    chunk.pending -= 1
                    if chunk.pending == 0:
                        self._written.notify_all()

    def _write(self, chunk: Chunk, pos: int, data: memoryview) -> None:
        tf = chunk.file
        try:
            tf.pwrite(data, chunk.part.offset + pos)
        except OSError as e:
            raise io_error(e, tf.plan.path) from e
        self._account(tf, chunk.part, len(data))

    def _account(self, tf: TargetFile, part: Part, n: int) -> None:
        self.progress.add(n)
        if tf.wrote(part, n):
            self.finishq.put(tf)

    def _finisher(self) -> None:
        while True:
            tf = self.finishq.get()
            if tf is None:
                return
            try:
                if not self.stop.is_set():
                    tf.finish()
            except BaseException as e:
                self._fail(e)

    # -- one chunk ----------------------------------------------------------------
    def _chunk(self, c: Chunk) -> None:
        c.file.open()
        if c.length == 0:
            if c.part.name in self.expected:
                c.file.checked(c.part, 0)
            self._account(c.file, c.part, 0)
            return
        src = self._local_source(c.part, c.file)
        if src is not None:
            self._copy_local(c, src)
        else:
            self._download(c, inline=False)

    def _copy_local(self, c: Chunk, src: str) -> None:
        try:
            sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RemoteError(f"cannot read {c.part.name} from {self.remote.url}: {e.strerror}") from e
        try:
            step = 16 * 1024 * 1024
            pos = c.offset
            end = c.offset + c.length
            while pos < end:
                if self.stop.is_set():
                    raise _Stopped()
                want = min(step, end - pos)
                self.throttle.take(want, self.stop)
                try:
                    n = copy_range(sfd, pos, c.file.fd, c.part.offset + pos, want)
                except OSError as e:
                    raise io_error(e, c.file.plan.path) from e
                if n != want:
                    raise RemoteError(
                        f"{c.part.name} in {self.remote.url} is shorter than its name says; "
                        "rerun the backup to repair it"
                    )
                pos += n
                self._account(c.file, c.part, n)
        finally:
            os.close(sfd)

    def _hand_over(self, c: Chunk, pos: int, buf: mmap.mmap, n: int, inline: bool) -> None:
        """Write n bytes of buf at pos of the part: here (inline) or on a writer thread."""
        if inline:
            try:
                self._write(c, pos, memoryview(buf)[:n])
            finally:
                self.pool.put(buf)
        else:
            with self._written:
                c.pending += 1
            self.writeq.put((c, pos, buf, n))

    def _download(self, c: Chunk, inline: bool) -> None:
        """Stream a range; on a transient error resume from the first missing byte, on a
        block whose CRC is wrong fetch that block again; a block wrong every time is a
        corrupt part: the restore stops (exit 3) before the file is complete."""
        # next byte within the part, CRC32 of its manifest block so far
        state = [c.offset, 0]
        for check in range(CHECK_ATTEMPTS):
            try:
                for attempt in retrying(self.retry, lambda: state[0]):
                    with attempt:
                        self._stream(c, state, inline)
                return
            except _Mismatch as e:
                if check + 1 < CHECK_ATTEMPTS:
                    log.warning("%s from %s; fetching the block again", e, self.remote.url)
                    continue
                raise BadBackupError(
                    f"{c.part.name} in {self.remote.url} does not match the backup's checksums ({e}, "
                    f"{CHECK_ATTEMPTS} downloads): the part is corrupt in the store; nothing was renamed "
                    "into place; run `snapferry verify` on the backup and make a new one"
                ) from None

    def _stream(self, c: Chunk, state: list[int], inline: bool) -> None:
        end = c.offset + c.length
        if state[0] >= end:
            return
        want_crcs = self.expected.get(c.part.name)
        reader = self.remote.open_part(c.part, state[0], end - state[0])
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
                    self._hand_over(c, state[0], buf, n, inline)
                    state[0] += n
                else:
                    self.pool.put(buf)
                if n < want:
                    raise TransientRemoteError(
                        f"the body of {c.part.name} from {self.remote.url} ended early at byte "
                        f"{state[0]} of {c.part.size}"
                    )
                if self.stop.is_set():
                    raise _Stopped()
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
        with self._written:  # no stale write of the bad block may land after its new bytes
            while c.pending:
                self._written.wait(0.2)
        taken = state[0] - start
        c.file.rewind(c.part, taken)
        self.progress.add(-taken)
        state[0] = start
        raise _Mismatch(c.part, idx, want, got)

    def _stream_to_file(self, c: Chunk, state: list[int], end: int, reader: FileReader) -> None:
        """The body goes into the file in the kernel (splice); no buffer from the pool."""
        while state[0] < end:
            try:
                n = reader.read_to_file(c.file.fd, c.part.offset + state[0], min(self.t.block_size, end - state[0]))
            except OSError as e:
                raise io_error(e, c.file.plan.path) from e
            if not n:
                raise TransientRemoteError(
                    f"the body of {c.part.name} from {self.remote.url} ended early at byte "
                    f"{state[0]} of {c.part.size}"
                )
            self.throttle.take(n, self.stop)
            state[0] += n
            self._account(c.file, c.part, n)
            if self.stop.is_set():
                raise _Stopped()

    # -- in place -----------------------------------------------------------------
    def _inplace_file(self, tf: TargetFile) -> None:
        tf.open()
        for p in tf.plan.parts:
            if p.size == 0:
                if p.name in self.expected:
                    tf.checked(p, 0)
                self._account(tf, p, 0)
                continue
            src = self._local_source(p, tf)
            step = self._chunk_size(p, tf)
            for off in range(0, p.size, step):
                c = Chunk(tf, p, off, min(step, p.size - off))
                if src is not None:
                    self._copy_local(c, src)
                else:
                    self._download(c, inline=True)


def _pick_error(errors: list[BaseException]) -> BaseException:
    # A signal outranks the errors it caused; a user-facing error outranks a bare one.
    for e in errors:
        if isinstance(e, Interrupted | KeyboardInterrupt):
            return e
    for e in errors:
        if isinstance(e, SnapferryError):
            return e
    return errors[0]
