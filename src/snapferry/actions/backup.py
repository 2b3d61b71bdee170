"""Backup: make the remote hold exactly the snapshot's parts, then mark it complete.

Steps, as vmbackup orders them: drop the completion marker, list source, dst
and origin, delete dst parts the source lacks, server-side copy what origin
has, upload the rest, write metadata, write the marker last. A rerun after an
interruption resumes, because the listing sees what is already there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import __version__, checksums
from ..crypto import Writer, refuse_plaintext_over_encrypted
from ..errors import UsageError, unreadable_source
from ..local import SourceFile, list_source
from ..names import MANIFEST_FILE
from ..parts import (
    BACKUP_COMPLETE_FILE,
    MAX_PART_SIZE,
    Part,
    always_transfer,
    difference,
    intersect,
    split_file,
    total_size,
    validate_listing,
)
from ..progress import Progress, human_bytes
from ..remotes.base import LocalRegion, Remote
from ..remotes.location import local_location, location_of, within
from ..remotes.retrying import with_retries
from ..results import BackupResult
from ..settings import RunSettings
from ..snapshot import snapshot_time
from ..throttle import Cancelled
from ..workers import parallel
from .commit import KEEP, BackupSession
from .livedir import refuse_data_dir
from .opening import Where, opened
from .origin import Origin, origin_of
from .source import Source
from .uploads import FileRegionBody, send_part, upload_batches

__all__ = ["Backup", "FileRegionBody", "refuse_dst_inside", "refuse_nested_backups",
           "send_part"]  # the last also for copy.py, as before uploads.py

log = logging.getLogger("snapferry")


def source_parts(files: list[SourceFile], max_part_size: int) -> tuple[list[Part], dict[str, str]]:
    parts: list[Part] = []
    where: dict[str, str] = {}
    for f in files:
        where[f.path] = f.abspath
        parts.extend(split_file(f.path, f.size, max_part_size))
    return parts, where


@dataclass(frozen=True)
class Backup:
    """A backup of `source` to `dst` (vmbackup's actions.Backup): `Backup(...).run()`.

    `dst` and `origin` are URLs the run opens and closes, or remotes the caller lends
    (the manager's shared remote of latest/). Without `origin` the backup has NoOrigin.
    `encrypt` goes with the key of `settings`: the backup is encrypted under it. Without it an
    encrypted backup at dst is refused unless `replace_encrypted`; `writer` says whose run
    that is (the remedy differs: the manager's runs are Writer.MANAGER)."""

    dst: Where
    source: Source
    settings: RunSettings = field(default_factory=RunSettings)
    origin: Where | None = None
    max_part_size: int = MAX_PART_SIZE
    force: bool = False  # back up a stopped data directory as --src (never a running one)
    encrypt: bool = False
    replace_encrypted: bool = False
    writer: Writer = Writer.BACKUP

    def run(self) -> BackupResult:
        s = self.settings
        if self.encrypt != (s.key is not None):
            raise UsageError(
                "--encrypt needs --encryption-key-file FILE (make one with `snapferry keygen FILE`)" if self.encrypt
                else "--encryption-key-file is given without --encrypt; add --encrypt to encrypt this backup"
            )
        with contextlib.ExitStack() as stack:
            dst = opened(stack, self.dst, s)
            origin = origin_of(stack, self.origin, s)  # NoOrigin without one
            dst = origin.writer(dst, s.key, self.replace_encrypted)
            refuse_dst_inside(self.source.data_dir, dst)
            refuse_plaintext_over_encrypted(dst, self.writer, encrypted=s.key is not None,
                                            replace=self.replace_encrypted)
            with self.source.directory(dst.url) as src_dir:
                return self._run(src_dir, dst, origin)

    def _run(self, src_dir: str, dst: Remote, origin: Origin) -> BackupResult:
        start = time.monotonic()
        # The run's one retry layer, on top of whatever was opened (encryption included).
        dst = with_retries(dst, self.settings.retry)
        src_dir = os.path.abspath(src_dir)
        refuse_data_dir(src_dir, self.force)  # a live (or stopped) data directory is no snapshot
        refuse_dst_inside(src_dir, dst)
        origin.check(dst)
        files = list_source(src_dir)
        with BackupSession(dst, "backup") as session:
            return self._backup(src_dir, files, dst, origin, start, session)

    def _backup(self, src_dir: str, files: list[SourceFile], dst: Remote, origin: Origin, start: float,
                session: BackupSession) -> BackupResult:
        stop = session.stop
        concurrency, throttle = self.settings.concurrency, self.settings.throttle()
        src_parts, where = source_parts(files, self.max_part_size)
        # Every name a remote lists is checked before anything is written or deleted.
        dst_parts = dst.list_parts()
        validate_listing(dst_parts, dst.url)
        origin_parts = origin.list_parts()
        log.info(
            "backup of %s to %s: %d source parts, %d at dst, %d at origin",
            src_dir, dst.url, len(src_parts), len(dst_parts), len(origin_parts),
        )
        to_delete = difference(dst_parts, src_parts)
        refuse_nested_backups(dst, to_delete, concurrency)

        session.begin()
        dst_manifest = _read_raw_manifest(dst)
        known = (checksums.decode(dst_manifest) or {}) if dst_manifest is not None else {}
        known = {**origin.known_crcs(), **known}
        session.delete_stale(to_delete, concurrency)

        present = {p.key for p in dst_parts}
        missing = [p for p in src_parts if p.key not in present or always_transfer(p.path)]
        from_origin = [p for p in intersect(origin_parts, missing) if not always_transfer(p.path)]
        origin.copy_parts(dst, from_origin, concurrency)
        copied = {p.key for p in from_origin}
        # Biggest first: a 1 GiB part is one worker's sequential job, and started last it
        # would run alone at the end while the other workers sit idle.
        to_upload = sorted((p for p in missing if p.key not in copied), key=lambda p: -p.size)
        upload_bytes = total_size(to_upload)

        crcs: dict[str, list[int]] = {}
        with Progress("backup", upload_bytes, self.settings.progress) as progress:

            def upload_one(p: Part) -> None:
                path = where[p.path]
                sent = send_part(
                    dst, p, lambda: FileRegionBody(path, p.offset, p.size), LocalRegion(path, p.offset, p.size),
                    throttle, progress, stop,
                )
                # The CRCs of the bytes sent, from the backends that read them; otherwise the
                # bytes are in the page cache right after the upload, and hashing them is cheap.
                crcs[p.name] = sent if sent is not None else _local_crcs(path, p)

            def upload_batch(batch: list[Part]) -> None:
                for p in batch:
                    if stop.is_set():
                        raise Cancelled()
                    upload_one(p)

            parallel(concurrency, upload_batches(to_upload), upload_batch, stop)

        uploaded = {p.name for p in to_upload}
        unknown: list[Part] = []
        for p in src_parts:
            if p.name in uploaded:
                continue
            # An entry from a version-1 manifest lacks the whole-part CRC32C: hashed again once.
            if p.name in known and not always_transfer(p.path) and checksums.crc32c_of(known[p.name]) is not None:
                crcs[p.name] = known[p.name]
            else:
                unknown.append(p)

        def hash_one(p: Part) -> None:
            crcs[p.name] = _local_crcs(where[p.path], p)

        parallel(concurrency, unknown, hash_one)
        manifest = checksums.encode(crcs)
        created = snapshot_time(os.path.basename(src_dir.rstrip("/"))) or datetime.now(UTC)
        meta = {"created_at": _rfc3339(created), "completed_at": _rfc3339(datetime.now(UTC)),
                "created_by": f"snapferry {__version__}"}
        # A nothing-changed run leaves the manifest as it is: one write (and fsync) less.
        session.commit(manifest if manifest != dst_manifest else KEEP,
                       json.dumps(meta, separators=(",", ":")).encode())
        seconds = time.monotonic() - start
        # The CLI prints the summary; at info level this line would say it a second time.
        log.debug(
            "backup complete: %s backed up, %s uploaded, %s copied from origin, %s deleted in %.1fs",
            human_bytes(total_size(src_parts)), human_bytes(upload_bytes),
            human_bytes(total_size(from_origin)), human_bytes(total_size(to_delete)), seconds,
        )
        return BackupResult(
            src=src_dir,
            dst=dst.url,
            origin=origin.url,
            backup_bytes=total_size(src_parts),
            uploaded_bytes=upload_bytes,
            copied_bytes=total_size(from_origin),
            deleted_bytes=sum(p.actual_size for p in to_delete),
            parts_uploaded=len(to_upload),
            parts_copied=len(from_origin),
            parts_deleted=len(to_delete),
            seconds=seconds,
        )


def _read_raw_manifest(remote: Remote) -> bytes | None:
    return remote.read_file(MANIFEST_FILE) if remote.has_file(MANIFEST_FILE) else None


def _local_crcs(path: str, p: Part) -> list[int]:
    try:
        return checksums.file_crcs(path, p.offset, p.size)
    except OSError as e:
        raise unreadable_source(path, e) from e


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def refuse_dst_inside(src_dir: str, dst: Remote) -> None:
    """A destination inside the data (or snapshot) directory would back itself up;
    a source inside the destination would lose files to the stale-part deletion."""
    src, where = local_location(src_dir), location_of(dst)
    if within(where, src):
        raise UsageError(
            f"the backup destination {dst.url} is inside the source {src_dir!r}; "
            "pick a destination outside the data directory"
        )
    if within(src, where):
        raise UsageError(
            f"the source {src_dir!r} is inside the backup destination {dst.url}, whose stale "
            "parts a backup deletes; pick another destination"
        )


def refuse_nested_backups(dst: Remote, to_delete: list[Part], concurrency: int) -> None:
    """Refuse (exit 2) when parts about to be deleted belong to another backup below dst.

    A backup below dst (`vm/daily` under `vm`) shows up in dst's listing as parts whose
    paths start with its prefix, and a backup or copy to dst would delete them all. Its
    completion marker sits in one of those parts' ancestor directories: ask for it there.
    """
    dirs: set[str] = set()
    for p in to_delete:
        d = p.path.rpartition("/")[0]
        while d and d not in dirs:
            dirs.add(d)
            d = d.rpartition("/")[0]
    found: list[str] = []

    def look(d: str) -> None:
        if dst.has_file(f"{d}/{BACKUP_COMPLETE_FILE}"):
            found.append(d)

    parallel(concurrency, sorted(dirs), look)
    if found:
        nested = min(found)
        raise UsageError(
            f"{dst.url} holds another backup below it, {dst.url.rstrip('/')}/{nested}, whose parts this run "
            "would delete; pick a destination that holds no other backups"
        )
