"""The bounded buffer pool: the only memory the restore's data path uses.

Download workers fill blocks from it and hand them to the writer threads, so the
bytes in flight are bounded for the whole restore, not per worker, and blocks are
reused rather than reallocated. The blocks are page-aligned, as O_DIRECT needs.
"""

from __future__ import annotations

import mmap
import queue
import threading

from .. import directio


class Stopped(Exception):
    """Another thread failed or a signal arrived; stop quietly."""


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
                    raise Stopped() from None

    def put(self, buf: mmap.mmap) -> None:
        self._free.put(buf)

