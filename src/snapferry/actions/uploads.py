"""One part's upload, as a backup (and a copy) makes it: a body that can start over, the batches.

Kept apart from the backup's steps (backup.py) because copy.py uploads the same way.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Protocol

from ..errors import SnapferryError, unreadable_source
from ..parts import Part
from ..progress import Progress
from ..remotes.base import Body, LocalRegion, Remote
from ..throttle import Cancelled, Throttle


class FileRegionBody:
    """Exactly `size` bytes of a source file from `offset`, for uploads.

    Opened on the first read: backends that copy from the LocalRegion never read it."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self.path = path
        self.size = size
        self._pos = offset
        self._end = offset + size
        self._f: io.FileIO | None = None

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._pos
        if n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if self._f is None:
            try:
                self._f = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
            except OSError as e:
                raise unreadable_source(self.path, e) from e
            self._f.seek(self._pos)
        try:
            data = self._f.read(n)
        except OSError as e:
            raise unreadable_source(self.path, e) from e
        if not data:
            raise SnapferryError(
                f"the source file {self.path!r} shrank during the backup; back up a snapshot, not live files"
            )
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


class _ClosableBody(Body, Protocol):
    def close(self) -> None: ...


class _FreshBody:
    """A part's body that the retry layer can rewind (remotes/retrying.Rewindable): a new
    body from open_body, the bytes the failed attempt counted taken back by on_rewind."""

    def __init__(self, open_body: Callable[[], _ClosableBody], on_rewind: Callable[[], None]) -> None:
        self._open = open_body
        self._on_rewind = on_rewind
        self._body = open_body()
        self.size = self._body.size

    def read(self, n: int = -1) -> bytes:
        return self._body.read(n)

    def rewind(self) -> None:
        self._body.close()
        self._on_rewind()
        self._body = self._open()

    def close(self) -> None:
        self._body.close()


def send_part(
    dst: Remote,
    part: Part,
    open_body: Callable[[], _ClosableBody],
    local: LocalRegion | None,
    throttle: Throttle,
    progress: Progress,
    stop: threading.Event,
) -> list[int] | None:
    """Upload one part (retried by dst's retry layer, which rewinds the body: a fresh one).

    The bytes pass the shared throttle and count once on the progress bar (a failed
    attempt's bytes are taken back); once `stop` is set the upload aborts. Returns
    what the backend's upload_part returned (the part's block CRCs, or None).
    """
    sent = [0]

    def on_bytes(n: int) -> None:
        if stop.is_set():
            raise Cancelled()
        sent[0] += n
        throttle.take(n, stop)
        progress.add(n)

    def take_back() -> None:
        progress.add(-sent[0])
        sent[0] = 0

    body = _FreshBody(open_body, take_back)
    try:
        crcs = dst.upload_part(part, body, local, on_bytes)
    finally:
        body.close()
    # Backends that copy zero-copy may report fewer steps than bytes.
    progress.add(part.size - sent[0])
    return crcs


# Parts below this size go to the workers in batches of up to _BATCH_PARTS: one hand-off
# (a lock taken by a worker, often from another that held it) per batch, not per part.
# Bigger parts go one by one, so that no worker holds several while others sit idle.
_BATCH_BELOW = 256 * 1024
_BATCH_PARTS = 32


def upload_batches(parts: list[Part]) -> list[list[Part]]:
    """parts, in order, grouped for parallel(): each big part alone, small ones together."""
    batches: list[list[Part]] = []
    small: list[Part] = []
    for p in parts:
        if p.size >= _BATCH_BELOW:
            batches.append([p])
            continue
        small.append(p)
        if len(small) == _BATCH_PARTS:
            batches.append(small)
            small = []
    if small:
        batches.append(small)
    return batches
