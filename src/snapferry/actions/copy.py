"""Copy: make one remote hold exactly another's backup (sync semantics).

Inside one backend parts are copied server-side; across backends each part is
streamed, with its download and upload overlapped through a small bounded queue.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..checksums import check_inventory
from ..crypto import Writer, refuse_plaintext_over_encrypted
from ..errors import BadBackupError, TransientRemoteError
from ..names import MANIFEST_FILE
from ..parts import (
    BACKUP_COMPLETE_FILE,
    BACKUP_METADATA_FILE,
    Part,
    always_transfer,
    check_coverage,
    difference,
    group_by_file,
    total_size,
    validate_listing,
)
from ..progress import Progress
from ..remotes.base import Reader, Remote, read_full
from ..remotes.location import location_of, refuse_overlap
from ..remotes.retrying import with_retries
from ..results import CopyResult
from ..settings import RunSettings
from ..workers import parallel
from .backup import refuse_nested_backups, send_part
from .commit import BackupSession
from .complete import refuse_incomplete
from .opening import Where, opened, reading, writing

if TYPE_CHECKING:
    from ..remotes import RemoteOptions

log = logging.getLogger("snapferry")
_BLOCK = 8 * 1024 * 1024


class StreamBody:
    """Reads a remote range ahead on its own thread, so upload and download overlap."""

    def __init__(self, reader: Reader, size: int, depth: int = 4) -> None:
        self.size = size
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._buf = b""
        self._left = size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(reader,), daemon=True)
        self._thread.start()

    def _pump(self, reader: Reader) -> None:
        left = self.size
        try:
            while left > 0 and not self._stop.is_set():
                buf = bytearray(min(_BLOCK, left))
                mv = memoryview(buf)
                got = read_full(reader, mv)
                if got == 0:
                    raise TransientRemoteError("the source body ended early")
                left -= got
                self._q.put(bytes(mv[:got]))
            self._q.put(None)
        except BaseException as e:
            self._q.put(e)
        finally:
            reader.close()

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self._left
        out = []
        want = min(n, self._left)
        while want > 0:
            if not self._buf:
                item = self._q.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                self._buf = item
            take = self._buf[:want]
            self._buf = self._buf[want:]
            out.append(take)
            want -= len(take)
            self._left -= len(take)
        return b"".join(out)

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)


@dataclass(frozen=True)
class Copy:
    """A copy of the backup at `src` to `dst` (sync semantics): `Copy(...).run()`.

    `src` and `dst` are URLs the run opens (`src` with `src_remote_options` when given) and
    closes, or remotes the caller lends (the manager's latest/ and dated backups). With the
    key of `settings` the source is read with it and dst written under the source's record.
    Without a key an encrypted backup at dst is refused unless `replace_encrypted`; `writer`
    says whose run that is (the manager's copies are Writer.MANAGER).
    `before_write` runs once the destination's lease is held, before anything is written:
    the manager checks there that the backup is not locked or marked (which take that lease)."""

    src: Where
    dst: Where
    settings: RunSettings = field(default_factory=RunSettings)
    skip_backup_complete_check: bool = False
    src_remote_options: RemoteOptions | None = None
    before_write: Callable[[], None] | None = None
    replace_encrypted: bool = False
    writer: Writer = Writer.COPY

    def run(self) -> CopyResult:
        s = self.settings
        with contextlib.ExitStack() as stack:
            src = opened(stack, self.src, s, self.src_remote_options)
            dst = opened(stack, self.dst, s)
            refuse_plaintext_over_encrypted(dst, self.writer, encrypted=s.key is not None,
                                            replace=self.replace_encrypted, src=src)
            src = reading(src, s.key)
            # The manager's dated copies replace their own backup of the period, whose record
            # names another key only after a rekey of latest/ (the copy carries latest/'s over).
            replace = self.replace_encrypted or self.writer is Writer.MANAGER
            return self._run(src, writing(dst, s.key, src, replace=replace))

    def _run(self, src: Remote, dst: Remote) -> CopyResult:
        start = time.monotonic()
        # The run's one retry layer, on top of whatever was opened (encryption included).
        src, dst = with_retries(src, self.settings.retry), with_retries(dst, self.settings.retry)
        # Same place under two spellings, or one inside the other: the copy would delete the
        # source's parts as the destination's extras.
        refuse_overlap(location_of(src), location_of(dst))
        if not self.skip_backup_complete_check:
            refuse_incomplete(src, "; finish it, or pass --skip-backup-complete-check to copy it anyway")
        src_parts = src.list_parts()
        validate_listing(src_parts, src.url)
        check_coverage(group_by_file(src_parts))
        check_inventory(src, src_parts, verify=False)
        with BackupSession(dst, "copy") as session:
            if self.before_write is not None:
                self.before_write()
            return self._copy(src, dst, src_parts, start, session)

    def _copy(self, src: Remote, dst: Remote, src_parts: list[Part], start: float,
              session: BackupSession) -> CopyResult:
        concurrency, throttle = self.settings.concurrency, self.settings.throttle()
        stop = session.stop
        dst_parts = dst.list_parts()
        validate_listing(dst_parts, dst.url)
        to_delete = difference(dst_parts, src_parts)
        if not src_parts and dst_parts:
            # A source of markers only (a vmbackup pointed at a parent prefix leaves one) would wipe
            # the destination's backup: the same rule as restore's, before anything changes.
            raise BadBackupError(
                f"{src.url} holds no parts (only its markers), so copying it would delete all {len(dst_parts)} parts "
                f"of {dst.url}; check the --src URL, or delete the destination first if an empty backup is wanted"
            )
        refuse_nested_backups(dst, to_delete, concurrency)

        session.begin()
        session.delete_stale(to_delete, concurrency)
        present = {p.key for p in dst_parts}
        to_copy = [p for p in src_parts if p.key not in present or always_transfer(p.path)]
        server_side = dst.can_copy_from(src)
        nbytes = total_size(to_copy)

        with Progress("copy", nbytes, self.settings.progress) as progress:

            def copy_one(p: Part) -> None:
                if server_side:
                    dst.copy_part(src, p)
                    progress.add(p.size)
                    return
                send_part(dst, p, lambda: StreamBody(src.open_part(p, 0, p.size), p.size), None, throttle, progress,
                          stop)

            parallel(concurrency, to_copy, copy_one, stop)

        manifest, metadata = (src.read_file(name) if src.has_file(name) else None
                              for name in (MANIFEST_FILE, BACKUP_METADATA_FILE))
        # The source's marker as it is: vmbackup 1.79.5 writes "ok" and no metadata, and verify
        # tells that form from a backup that lost its metadata by the marker (checksums.metadata_lost).
        marker = src.read_file(BACKUP_COMPLETE_FILE)[:64] if src.has_file(BACKUP_COMPLETE_FILE) else b""
        session.commit(manifest, metadata, marker)
        return CopyResult(
            src=src.url,
            dst=dst.url,
            backup_bytes=total_size(src_parts),
            copied_bytes=nbytes,
            deleted_bytes=sum(p.actual_size for p in to_delete),
            parts_copied=len(to_copy),
            parts_deleted=len(to_delete),
            server_side=server_side,
            seconds=time.monotonic() - start,
        )
