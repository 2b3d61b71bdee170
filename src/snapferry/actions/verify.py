"""Verify: check a backup where it is stored, without restoring it.

Three levels, each one checking at least what the ones before check:
- structure (always): the completion marker, every object a part or a marker,
  safe part paths, real sizes against names, every file covered by its parts
  without gaps or overlaps, the manifest present and listing exactly the parts;
- provider checksums (unless `structure_only`): the checksum the store keeps of
  each part (GCS's CRC32C, S3's CRC32/CRC32C of objects uploaded with one)
  compared with the manifest, no data read: on gs:// from the listing, on s3://
  one HEAD per part, `concurrency` at a time;
- `read_data`: every byte (or a deterministic subset of the parts) read the way a
  restore reads it (ranged reads cut as the restore cuts them, into blocks of the
  restorer's bounded buffer pool, each manifest block's CRC32 compared); the parts
  a subset leaves unread get the provider checks of the level before, beside the
  reads (a part read is checked more closely than its provider checksum could).
Every problem is collected, not only the first: a scheduled job reports them all.

`--structure-only` is a start-up-sized job (one listing, then the manifest and the
metadata when the listing has them: no HEADs), so the modules only the other levels
use (the thread pool helper, the restorer's buffers) are imported by the functions
that run them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..checksums import (
    BLOCK,
    MANIFEST_FILE,
    Manifest,
    ManifestState,
    crc32,
    expected_provider_digest,
    made_by_snapferry,
    metadata_lost,
    parse_manifest,
)
from ..crypto import metadata_authenticated
from ..errors import SnapferryError, UsageError
from ..findings import Problem, ProblemKind, VerifyResult
from ..names import BACKUP_COMPLETE_FILE, BACKUP_METADATA_FILE
from ..partitions import PartitionFilter, in_selection, select
from ..parts import Part, group_by_file, is_ignored_name, parse_name, validate_path
from ..remotes.base import Remote, innermost, kept_checksums, local_tree
from ..remotes.retrying import with_retries
from ..settings import RunSettings
from ..workers import parallel
from .opening import Where, opened, reading, refuse_encrypted

log = logging.getLogger("snapferry")

# What a restore does with each kind of problem: junk it skips, as vmrestore does; a
# manifest that is no inventory it only warns of, unless --verify; the rest make it fail.
_RESTORE_SKIPS = frozenset({ProblemKind.JUNK})
_RESTORE_WARNS = frozenset({ProblemKind.UNLISTED, ProblemKind.MANIFEST})


def advice(problems: list[Problem]) -> str:
    """What to do about the problems found, and what a restore of the backup would do."""
    kinds = {p.kind for p in problems}
    skipped = sum(1 for p in problems if p.kind in _RESTORE_SKIPS)
    if not kinds - _RESTORE_SKIPS:
        return (f"a restore skips the {skipped} object(s) that are not parts, as vmrestore does; "
                "delete them from the backup")
    also = f"; it skips the {skipped} object(s) that are not parts" if skipped else ""
    if not kinds - _RESTORE_SKIPS - _RESTORE_WARNS:
        return ("rerun the backup to repair it (a restore --verify of it would refuse it, and a plain "
                f"restore cannot tell whether parts are lost{also})")
    return f"rerun the backup to repair it (a restore of it would fail{also})"


@dataclass(frozen=True, slots=True)
class Subset:
    """Slice `index` (1-based) of `count`: the parts whose name hashes to it."""

    index: int
    count: int

    @staticmethod
    def parse(text: str, today: datetime | None = None) -> Subset:
        """`N/M`, or `P%`: slice (day number mod M) + 1 of M = 100/P, so a daily job
        checks every part once in M days."""
        t = text.strip()
        try:
            if t.endswith("%"):
                pct = float(t[:-1])
                if not 0 < pct <= 100:
                    raise ValueError
                count = max(1, round(100 / pct))
                day = (today or datetime.now(UTC)).toordinal()
                return Subset(day % count + 1, count)
            n, _, m = t.partition("/")
            sub = Subset(int(n), int(m))
        except ValueError:
            sub = Subset(0, 0)
        if not 1 <= sub.index <= sub.count:
            raise UsageError(f"--read-data-subset {text!r} is neither N/M (1 <= N <= M) nor a percentage like 5%")
        return sub

    def has(self, part: Part) -> bool:
        return crc32(part.name.encode("utf-8", "surrogateescape")) % self.count == self.index - 1


@dataclass(frozen=True)
class Verify:
    """A check of the backup at `src` where it is stored: `Verify(...).run()`; the result lists
    every problem found. `src` is a URL the run opens and closes, or a remote the caller lends;
    with the key of `settings` it is read with it. A `subset` implies `read_data`; `only`
    checks those month partitions and the files outside every partition."""

    src: Where
    settings: RunSettings = field(default_factory=RunSettings)
    structure_only: bool = False
    read_data: bool = False
    subset: Subset | None = None
    only: PartitionFilter = field(default_factory=PartitionFilter)

    def run(self) -> VerifyResult:
        self.only.check()  # the syntax, before the remote is opened
        key = self.settings.key
        with contextlib.ExitStack() as stack:
            remote = reading(opened(stack, self.src, self.settings), key)
            result = self._run(remote)
            if key is None and not result.complete:
                refuse_encrypted(remote)
            return result

    def _run(self, src: Remote) -> VerifyResult:
        start = time.monotonic()
        read_data = self.read_data or self.subset is not None
        src = with_retries(src, self.settings.retry)  # the run's one retry layer, on top
        problems: list[Problem] = []
        add = problems.append
        # One listing says which of the small files exist: no HEAD for each of them.
        objects = src.list_objects()
        listed_names = {name for name, _ in objects}
        complete = BACKUP_COMPLETE_FILE in listed_names
        if not complete:
            add(Problem(BACKUP_COMPLETE_FILE, ProblemKind.INCOMPLETE, "present", "missing"))
        parts = _listed_parts(objects, add)
        if not parts:
            add(Problem("*", ProblemKind.NO_PARTS, "at least one part",
                        "none (only markers: a restore of it would empty the target; check the URL)" if objects
                        else "nothing at all: no backup is stored there; check the URL"))
        selection = select(parts, partitions=self.only.partitions, since=self.only.since, now=datetime.now(UTC),
                           src=src.url, for_restore=False)  # None when neither is given
        if selection is not None:
            parts = [p for p in parts if in_selection(p.path, selection)]
        files = group_by_file(parts)
        broken = _structure(files, add)
        broken |= _symlinks(src, {p.name for p in parts}, add)
        manifest, meta = _small_files(src, listed_names, add)
        made_by = "snapferry" if made_by_snapferry(meta) or manifest.state is ManifestState.PRESENT else "vmbackup"
        entries = manifest.entries
        if selection is not None:
            entries = {n: v for n, v in entries.items() if in_selection(n.rsplit("/", 1)[0], selection)}
        if manifest.state is ManifestState.PRESENT:
            listed = {p.name for p in parts}
            for name in sorted(set(entries) - listed):
                add(Problem(name, ProblemKind.MISSING, "listed in the manifest", "no such object"))
            for p in parts:
                if p.name not in entries:
                    add(Problem(p.name, ProblemKind.UNLISTED, "an entry in the manifest", "none"))
                elif len(entries[p.name]) != max(1, -(-p.size // BLOCK)):
                    add(Problem(p.name, ProblemKind.MANIFEST, f"{max(1, -(-p.size // BLOCK))} block CRCs",
                                f"{len(entries[p.name])}"))
        elif manifest.state is ManifestState.UNREADABLE:
            add(Problem(MANIFEST_FILE, ProblemKind.MANIFEST, "a snapferry checksum manifest", manifest.detail))
        elif made_by == "snapferry":
            add(Problem(MANIFEST_FILE, ProblemKind.MANIFEST, "present (the backup was made by snapferry)", "missing"))
        elif complete and metadata_lost(src, listed_names):
            add(Problem(MANIFEST_FILE, ProblemKind.METADATA, f"{BACKUP_METADATA_FILE} and a {MANIFEST_FILE}",
                        "neither (no manifest: bytes cannot be checked; an empty completion marker without "
                        "metadata is left by no tool, so both were lost)"))
        checkable = [p for p in parts if p.name in entries and p.name not in broken]

        provider_checked = 0
        read_parts = read_bytes = 0
        stop = threading.Event()  # set by the first failure of either pass: both stop
        if not read_data:
            if not self.structure_only:
                provider_checked = _provider(src, checkable, entries, self.settings.concurrency, add, stop)
        else:
            todo = [p for p in parts if p.name not in broken and (self.subset is None or self.subset.has(p))]
            read_parts, read_bytes = len(todo), sum(p.size for p in todo)
            # A part whose bytes are read is checked against the manifest block by block: the
            # store's checksum of it would add nothing but a metadata request (on s3:// a third
            # of the CPU of a --read-data run). The parts outside a subset still get theirs,
            # beside the reads instead of before them; list.append of a problem is atomic.
            reading = {p.name for p in todo}
            unread = [p for p in checkable if p.name not in reading]
            with ThreadPoolExecutor(1, thread_name_prefix="verify-provider") as side:
                checked = None if self.structure_only or not unread else side.submit(
                    _provider, src, unread, entries, self.settings.concurrency, add, stop)
                from .readdata import read_parts_data  # the restorer's pool: only for --read-data

                try:
                    read_parts_data(src, todo, entries, self.settings, add, stop)
                except BaseException as e:
                    stop.set()
                    # reads stopped because the provider pass failed: its error is the one to show
                    side_error = checked.exception() if checked is not None else None
                    if side_error is not None and not isinstance(e, SnapferryError | KeyboardInterrupt):
                        raise side_error from e
                    raise
                provider_checked = checked.result() if checked is not None else 0

        problems.sort(key=lambda pr: (pr.part, pr.kind.value))
        return VerifyResult(
            src=src.url,
            made_by=made_by,
            complete=complete,
            manifest_version=manifest.version,
            backup_bytes=sum(plist[0].file_size for plist in files.values()),
            files=len(files),
            parts=len(parts),
            parts_with_checksums=sum(1 for p in parts if p.name in entries),
            parts_provider_checked=provider_checked,
            parts_read=read_parts,
            bytes_read=read_bytes,
            subset=f"{self.subset.index}/{self.subset.count}" if read_data and self.subset else None,
            problems=problems,
            seconds=time.monotonic() - start,
            created_at=None if meta.get("created_at") is None else str(meta["created_at"]),
            metadata_authenticated=metadata_authenticated(src),
        )


def _small_files(
    src: Remote, listed: set[str], add: Callable[[Problem], None]
) -> tuple[Manifest, dict[str, object]]:
    """The manifest and the metadata; a metadata file that is not a JSON object is a problem
    (every tool writes one: damage, or someone else's file)."""
    manifest = parse_manifest(src.read_file(MANIFEST_FILE) if MANIFEST_FILE in listed else None)
    meta: dict[str, object] = {}
    if BACKUP_METADATA_FILE in listed:
        raw = src.read_file(BACKUP_METADATA_FILE)
        try:
            loaded = json.loads(raw)
        except ValueError as e:
            add(Problem(BACKUP_METADATA_FILE, ProblemKind.METADATA, "a JSON object", f"not JSON ({e})"))
        else:
            if isinstance(loaded, dict):
                meta = loaded
            else:
                add(Problem(BACKUP_METADATA_FILE, ProblemKind.METADATA, "a JSON object",
                            f"a JSON {type(loaded).__name__}"))
    return manifest, meta


def _symlinks(src: Remote, part_names: set[str], add: Callable[[Problem], None]) -> set[str]:
    """fs://: every symlink in the backup is a problem (vmbackup and snapferry write none; a
    restore follows none out of the backup); the parts that are links are not read."""
    tree = local_tree(innermost(src))  # an encrypted backup's files are where its objects are
    if tree is None:
        return set()
    links = tree.listed_symlinks()
    for name in sorted(links):
        what = "a part (a regular file)" if name in part_names else "a directory or part"
        add(Problem(name, ProblemKind.SYMLINK, what, "a symlink"))
    return {n for n in links if n in part_names}


def _listed_parts(objects: list[tuple[str, int]], add: Callable[[Problem], None]) -> list[Part]:
    """The parts among the listed objects; objects that are neither parts nor markers are junk."""
    parts: list[Part] = []
    for name, size in objects:
        if is_ignored_name(name):
            continue
        p = parse_name(name, size)
        if p is None:
            add(Problem(name, ProblemKind.JUNK, "a part named <path>/<size>_<offset>_<size>", f"{size} bytes"))
        else:
            parts.append(p)
    return parts


def _structure(files: dict[str, list[Part]], add: Callable[[Problem], None]) -> set[str]:
    """Paths, sizes and coverage; returns the names of parts not worth reading (wrong size)."""
    broken: set[str] = set()
    for path in sorted(files):
        plist = files[path]
        try:
            validate_path(path)
        except SnapferryError as e:
            add(Problem(plist[0].name, ProblemKind.UNSAFE_PATH, "a relative path without '..'", str(e)))
            broken.update(p.name for p in plist)
            continue
        file_size = plist[0].file_size
        pos = 0
        for p in plist:
            if p.file_size != file_size:
                add(Problem(p.name, ProblemKind.OVERLAP, f"file size {file_size}", f"file size {p.file_size}"))
            if p.is_broken:
                add(Problem(p.name, ProblemKind.SIZE, f"{p.size} bytes", f"{p.actual_size} bytes"))
                broken.add(p.name)
            if p.offset < pos:
                add(Problem(p.name, ProblemKind.OVERLAP, f"a part starting at byte {pos}",
                            f"one starting at byte {p.offset}"))
            elif p.offset > pos:
                add(Problem(p.name, ProblemKind.GAP, f"a part starting at byte {pos}",
                            f"a gap of {p.offset - pos} bytes"))
            pos = max(pos, p.end)
        if pos < file_size:
            add(Problem(plist[-1].name, ProblemKind.GAP, f"parts covering {file_size} bytes of {path}",
                        f"{pos} bytes covered"))
    return broken


def _provider(
    src: Remote, parts: list[Part], entries: Mapping[str, list[int]], concurrency: int,
    add: Callable[[Problem], None], stop: threading.Event,
) -> int:
    """Compare each part's provider checksum with the manifest; returns how many could be."""
    keeper = kept_checksums(src)
    if keeper is None:
        log.debug("%s keeps no checksums snapferry can read", src.url)
        return 0
    lock = threading.Lock()
    counted = [0]

    def one(p: Part) -> None:
        kept = keeper.part_checksum(p)
        want = expected_provider_digest(entries[p.name], kept) if kept is not None else None
        if kept is None or want is None:
            return
        with lock:
            counted[0] += 1
            if want != kept.digest:
                add(Problem(p.name, ProblemKind.CHECKSUM, f"{kept.algorithm.value} {want.hex()} (manifest)",
                            f"{kept} (kept by the store)"))

    parallel(concurrency, parts, one, stop)
    return counted[0]
