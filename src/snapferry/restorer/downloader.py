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
over plain HTTP, remotes/s3/plainhttp.py) from the socket into the file. Small
single-part files are batched (session.py): the worker that reads one also
writes, closes and renames it, with no hand-off to a writer or finisher thread.
Each file's byte path is chosen once, by bytepath.choose_byte_path.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from ..checksums import BLOCK
from ..errors import Interrupted, SnapferryError
from ..parts import Part
from ..progress import Progress
from ..throttle import Cancelled, Throttle
from ..tuning import Tuning as Tuning  # moved to tuning.py (light, for the API's defaults); still importable here
from .bytepath import BytePath, choose_byte_path
from .fetch import Chunk, LocalPathFn, RangeFetcher, ReadFn
from .planner import FileMode, FilePlan, may_be_batched
from .pool import BufferPool, Stopped
from .session import RestoreSession
from .writer import TargetFile

# Files written and waiting, open (two descriptors each when written direct), for a
# finisher's fsync and rename.
FINISH_BACKLOG = 64
# Small chunks (at most SMALL_JOB bytes) are taken up to Tuning.small_jobs_per_take at once.
SMALL_JOB = 256 * 1024


class Downloader:
    def __init__(
        self,
        read: ReadFn,
        session: RestoreSession,
        files: list[FilePlan],
        tuning: Tuning,
        throttle: Throttle,
        progress: Progress,
        expected: dict[str, list[int]] | None = None,
        reread: bool = False,
        in_memory: bool = True,
        *,
        local_path: LocalPathFn | None = None,
        source: str = "the backup",
    ) -> None:
        """`read(part, offset, length)` opens a range of a part of the backup (`source`, its
        URL, names it in messages), retried by the caller's retry layer (a remote's open_part
        after remotes/retrying.with_retries); `local_path(part)`, where the backup is a local
        directory, names the file to copy a part from in the kernel.

        `expected` holds the manifest's block CRC32s by part name: with `in_memory` every
        byte of those parts is checked before it is written; with `reread` (restore --verify)
        each finished file is also read back before its rename."""
        self._reread = expected if reread else None
        self.expected = (expected or {}) if in_memory else {}
        self.session = session
        self.root = session.root
        self.files = files
        self.t = tuning
        self.throttle = throttle
        self.progress = progress
        self.stop = threading.Event()
        self.pool = BufferPool(tuning.block_size, tuning.max_inflight_bytes // tuning.block_size, self.stop)
        self.fetch = RangeFetcher(read, source, local_path, self.pool, throttle, progress, self.stop,
                                  self._account)
        self._jobs_lock = threading.Lock()
        self._errors: list[BaseException] = []
        # Files opened and not finished yet: a finished file is dropped at once, so the
        # objects alive follow the files in flight, not the files restored (100,000 small
        # files kept 100,000 TargetFiles, with their locks and dicts, to the end).
        self._live: set[TargetFile] = set()
        self._verified = 0  # parts checked of the files finished or abandoned so far
        self._count_lock = threading.Lock()
        self._jobs = self._iter_jobs()
        # Bounded: a file waiting for its fsync is an open descriptor, and fsyncs can fall far
        # behind fast reads (thousands of files from a local backup). A full queue makes the
        # writer that finished a file wait, so at most FINISH_BACKLOG files wait open.
        self.finishq: queue.Queue[TargetFile | None] = queue.Queue(maxsize=FINISH_BACKLOG)
        self._dirs_made: set[str] = set()

    @property
    def verified_parts(self) -> int:
        """Parts checked against the manifest; complete once `run` returned."""
        return self._verified + sum(tf.verified_parts for tf in list(self._live))

    def _done(self, tf: TargetFile) -> None:
        """tf is finished (or abandoned): count its checks and let it go."""
        with self._count_lock:
            self._verified += tf.verified_parts
            self._live.discard(tf)

    # -- scheduling -------------------------------------------------------------
    def _iter_jobs(self) -> Iterator[Chunk | TargetFile]:
        expected = self.expected
        for fp in self.files:
            # Each part's manifest entry looked up once: a part's name is formatted anew on
            # every use, and a restore of small files formatted each one four times.
            crcs = [expected.get(p.name) for p in fp.parts] if expected else [None] * len(fp.parts)
            tf = self._target_file(fp, any(c is not None for c in crcs))
            self._live.add(tf)
            if fp.mode is FileMode.INPLACE:
                yield tf  # one worker writes it in order: its length is its resume point
                continue
            for p, want in zip(fp.parts, crcs, strict=True):
                if p.size == 0:
                    yield Chunk(tf, p, 0, 0, want)
                step = self._chunk_size(p, self.fetch.local_source(p, tf), want is not None)
                for off in range(0, p.size, step):
                    yield Chunk(tf, p, off, min(step, p.size - off), want)

    def _target_file(self, fp: FilePlan, checked: bool) -> TargetFile:
        path = choose_byte_path(fp.file_size, self.t.direct_min, self.t.zero_copy, checked)
        # Big files keep their path (preallocated, direct, fsynced on their own); small
        # single-part ones are batched: written and renamed by one worker, synced together.
        batch = (self.t.batch_small_files and fp.mode is FileMode.NEW and may_be_batched(fp.all_parts)
                 and path is not BytePath.DIRECT)
        return TargetFile(self.root, fp, self.session, path, self._reread, self._dirs_made,
                          self.t.zero_copy, checked, batch)

    def _chunk_size(self, part: Part, local: str | None, checked: bool) -> int:
        """Big parts are cut so every worker gets a range; small ones stay one request,
        since each request costs the server and the client more than its bytes do.

        Parts copied in the kernel are not cut: those copies are CPU-bound, and threads
        copying into one file serialise on its inode lock (perf showed them spinning on it)."""
        if self.t.chunk_size:
            step = self.t.chunk_size
        elif local is not None:  # copied in the kernel from this local file
            return max(part.size, 1)
        else:
            even = -(-part.size // max(1, self.t.concurrency))
            step = max(self.t.min_chunk_size, -(-even // (1 << 20)) << 20)
        if checked:
            # Ranges start and end on manifest blocks, so each range checks whole blocks on
            # its own (a running CRC across ranges would order the ranges of a part).
            step = -(-step // BLOCK) * BLOCK
        return step

    def _next_jobs(self) -> list[Chunk | TargetFile]:
        """The next job, or several small ones in a row: one take of the shared lock per
        `small_jobs_per_take` small files instead of one per file (eight workers contending for
        it were a GIL hand-off per file). A big chunk ends the take, so the ranges of a
        big part still spread over the workers."""
        jobs: list[Chunk | TargetFile] = []
        with self._jobs_lock:
            for job in self._jobs:
                jobs.append(job)
                if (len(jobs) >= self.t.small_jobs_per_take or not isinstance(job, Chunk)
                        or job.length > SMALL_JOB):
                    break
        return jobs

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
                self.fetch.writeq.put(None)
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
        if not isinstance(e, Stopped | Cancelled):
            self._errors.append(e)
        self.stop.set()

    def _close_unfinished(self) -> None:
        for tf in list(self._live):
            tf.abandon()
            self._done(tf)

    def _worker(self) -> None:
        try:
            while not self.stop.is_set():
                jobs = self._next_jobs()
                if not jobs:
                    return
                for job in jobs:
                    if self.stop.is_set():
                        return  # the files of the jobs left stay unfinished: abandoned by run
                    if isinstance(job, TargetFile):
                        self._inplace_file(job)
                    else:
                        self._chunk(job)
        except BaseException as e:
            self._fail(e)

    def _writer(self) -> None:
        while True:
            item = self.fetch.writeq.get()
            if item is None:
                return
            chunk, pos, buf, n = item
            try:
                if not self.stop.is_set():
                    self.fetch.write(chunk, pos, memoryview(buf)[:n])
            except BaseException as e:
                self._fail(e)
            finally:
                self.pool.put(buf)
                with self.fetch.written:
                    chunk.pending -= 1
                    if chunk.pending == 0:
                        self.fetch.written.notify_all()

    def _account(self, tf: TargetFile, part: Part, n: int) -> None:
        self.progress.add(n)
        if tf.wrote(part, n):
            if tf.batch:
                tf.finish()  # a close and a rename: not worth a hand-off to a finisher
                self._done(tf)
            else:
                self.finishq.put(tf)

    def _finisher(self) -> None:
        while True:
            tf = self.finishq.get()
            if tf is None:
                return
            try:
                if not self.stop.is_set():
                    tf.finish()
                    self._done(tf)
            except BaseException as e:
                self._fail(e)

    # -- one chunk ----------------------------------------------------------------
    def _chunk(self, c: Chunk) -> None:
        c.file.open()
        if c.length == 0:
            if c.crcs is not None:
                c.file.checked(c.part, 0)
            self._account(c.file, c.part, 0)
            return
        src = self.fetch.local_source(c.part, c.file)
        if src is not None:
            self.fetch.copy_local(c, src)
        else:
            # A batched file is written by the worker that reads it: no hand-off to a writer.
            self.fetch.download(c, inline=c.file.batch)

    # -- in place -----------------------------------------------------------------
    def _inplace_file(self, tf: TargetFile) -> None:
        tf.open()
        for p in tf.plan.parts:
            want = self.expected.get(p.name)
            if p.size == 0:
                if want is not None:
                    tf.checked(p, 0)
                self._account(tf, p, 0)
                continue
            src = self.fetch.local_source(p, tf)
            step = self._chunk_size(p, src, want is not None)
            for off in range(0, p.size, step):
                c = Chunk(tf, p, off, min(step, p.size - off), want)
                if src is not None:
                    self.fetch.copy_local(c, src)
                else:
                    self.fetch.download(c, inline=True)


def _pick_error(errors: list[BaseException]) -> BaseException:
    # A signal outranks the errors it caused; a user-facing error outranks a bare one.
    for e in errors:
        if isinstance(e, Interrupted | KeyboardInterrupt):
            return e
    for e in errors:
        if isinstance(e, SnapferryError):
            return e
    return errors[0]
