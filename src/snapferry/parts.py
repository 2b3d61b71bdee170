"""The `Part` value type and the vmbackup naming rules.

A part is a byte range of one file of the snapshot. Its remote object is named
`<path>/<FILESIZE>_<OFFSET>_<SIZE>` in 16-digit upper-case hex, exactly as
VictoriaMetrics' lib/backup names it, so either tool reads the other's backups.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import BadBackupError

# The layout's names live in names.py; these stay importable from here for callers
# written before it (new code imports snapferry.names).
from .names import BACKUP_COMPLETE_FILE as BACKUP_COMPLETE_FILE
from .names import BACKUP_METADATA_FILE as BACKUP_METADATA_FILE
from .names import FLOCK_FILE as FLOCK_FILE
from .names import IGNORED_SUFFIX
from .names import JOURNAL_SUFFIX as JOURNAL_SUFFIX
from .names import RESTORE_IN_PROGRESS_FILE as RESTORE_IN_PROGRESS_FILE
from .names import TMP_SUFFIX as TMP_SUFFIX

MAX_PART_SIZE = 1024 * 1024 * 1024


# Files that change content without changing size: never considered equal.
_ALWAYS_TRANSFER_SUFFIXES = ("/parts.json", "/appliedRetention.txt")
_ALWAYS_TRANSFER_NAMES = ("parts.json", "appliedRetention.txt")

# vmbackup's `^(.+)[/\\]([0-9A-F]{16})_([0-9A-F]{16})_([0-9A-F]{16})$`, matched on the fixed-size
# tail only: the leading `(.+)` made the regex walk every name to its end and back
# (a third of the parse time of a million-part listing).
# Go's `$` is the end of the text, hence `\Z` (Python's `$` would also take a final newline).
_TAIL_RE = re.compile(r"[/\\]([0-9A-F]{16})_([0-9A-F]{16})_([0-9A-F]{16})\Z")
_TAIL_LEN = 51


@dataclass(frozen=True, slots=True)
class Part:
    path: str
    file_size: int
    offset: int
    size: int
    # The real length of the remote object (or of the local bytes). A part whose
    # actual_size differs from size is broken.
    actual_size: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def key(self) -> tuple[str, int, int, int, int]:
        """Identity for diffing.

        vmbackup leaves file_size out; then a file that changed size keeps its old
        parts at the same offsets and the new bytes are never uploaded. The name
        holds the file size, so a part of a resized file is a different object.
        """
        return (self.path, self.file_size, self.offset, self.size, self.actual_size)

    @property
    def name(self) -> str:
        """Object name relative to the backup root."""
        return f"{self.path}/{self.file_size:016X}_{self.offset:016X}_{self.size:016X}"

    @property
    def is_broken(self) -> bool:
        return self.actual_size != self.size

    def __str__(self) -> str:
        return f"part {self.name}"


def parse_name(name: str, actual_size: int) -> Part | None:
    """Parse a remote object name relative to the backup root; None if not a part."""
    cut = len(name) - _TAIL_LEN
    m = _TAIL_RE.match(name, cut) if cut > 0 else None
    if m is None or "\n" in name[:cut]:
        return None
    # A leading "/" stays: `prefix//abs/...` names the path "/abs", which validate_path
    # refuses as unsafe; cut here, it named a part whose key is not the object's.
    return Part(
        path=name[:cut],
        file_size=int(m.group(1), 16),
        offset=int(m.group(2), 16),
        size=int(m.group(3), 16),
        actual_size=actual_size,
    )


def parse_listing(objects: Iterable[tuple[str, int]], strip: int = 0) -> list[Part]:
    """The parts among (object name, real length) pairs, names cut by `strip` characters
    (a listing prefix); markers and names that are not parts are left out."""
    parts: list[Part] = []
    with gc_paused():
        for name, size in objects:
            rel = name[strip:]
            if is_ignored_name(rel):
                continue
            p = parse_name(rel, size)
            if p is not None:
                parts.append(p)
    return parts


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a listing of parts is parsed or planned.

    Parts hold no cycles, but the collector cannot know that: with a million of
    them alive, each collection walks them all, and a plan spent 30 % of its time
    there (bench/planner.py, 1,000,000 parts: 4.3 s with the collector, 3.0 s
    without). The previous state is restored on the way out.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def is_ignored_name(name: str) -> bool:
    """Names ending in `.ignore` are markers, never parts."""
    return name.endswith(IGNORED_SUFFIX)


def always_transfer(path: str) -> bool:
    return path.endswith(_ALWAYS_TRANSFER_SUFFIXES) or path in _ALWAYS_TRANSFER_NAMES


def split_file(path: str, file_size: int, max_part_size: int = MAX_PART_SIZE) -> Iterator[Part]:
    """Cut a file into parts of at most max_part_size; an empty file is one empty part."""
    if file_size == 0:
        yield Part(path, 0, 0, 0, 0)
        return
    offset = 0
    while offset < file_size:
        size = min(max_part_size, file_size - offset)
        yield Part(path, file_size, offset, size, size)
        offset += size


def difference(a: Iterable[Part], b: Iterable[Part]) -> list[Part]:
    """Parts of a whose key is not in b."""
    keys = {p.key for p in b}
    return [p for p in a if p.key not in keys]


def intersect(a: Iterable[Part], b: Iterable[Part]) -> list[Part]:
    """Parts of b whose key is also in a."""
    keys = {p.key for p in a}
    return [p for p in b if p.key in keys]


def total_size(parts: Iterable[Part]) -> int:
    return sum(p.size for p in parts)


def validate_path(path: str) -> None:
    """Refuse a part path that could land outside the restore target.

    Paths come from remote object names, which anyone with write access to the
    bucket controls; they are checked before anything touches the disk.
    """
    segs = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or "" in segs
        or "." in segs
        or ".." in segs
    )
    if bad:
        raise BadBackupError(
            f"the backup holds a part with the unsafe path {path!r} "
            "(absolute, empty, '.' or '..' segments); refusing to use it"
        )
    if path.endswith((TMP_SUFFIX, JOURNAL_SUFFIX)):
        raise BadBackupError(
            f"the backup holds {path!r}, whose name a restore uses for its own in-progress files; "
            "a VictoriaMetrics snapshot has no such files: check what was backed up"
        )
    top = path.split("/", 1)[0]
    if "/" not in path and top in (FLOCK_FILE, RESTORE_IN_PROGRESS_FILE):
        raise BadBackupError(
            f"the backup holds a part named {path!r}, which is reserved for the restore lock; "
            "refusing to restore it"
        )


def validate_listing(parts: Iterable[Part], url: str) -> None:
    """validate_path for every path of a remote's listing, before an action acts on any of it
    (copy and backup list sources, destinations and origins; restore plans from its source)."""
    for path in sorted({p.path for p in parts}):  # sorted: the same listing names the same culprit
        try:
            validate_path(path)
        except BadBackupError as e:
            raise BadBackupError(f"{url}: {e}") from None


def group_by_file(parts: Iterable[Part]) -> dict[str, list[Part]]:
    """Parts per path, each list sorted by offset."""
    files: dict[str, list[Part]] = {}
    for p in parts:
        files.setdefault(p.path, []).append(p)
    for lst in files.values():
        lst.sort(key=lambda p: p.offset)
    return files


def check_coverage(files: dict[str, list[Part]]) -> None:
    """Every file must be covered by its parts exactly: no gap, no overlap, sizes right."""
    for path, plist in files.items():
        file_size = plist[0].file_size
        pos = 0
        for p in plist:
            if p.file_size != file_size:
                raise BadBackupError(
                    f"the backup is inconsistent: parts of {path!r} disagree on the file size "
                    f"({file_size} vs {p.file_size} in {p.name}); make a new backup"
                )
            if p.is_broken:
                raise BadBackupError(
                    f"the backup is broken: {p.name} holds {p.actual_size} bytes but its name "
                    f"says {p.size}; rerun the backup to repair it"
                )
            if p.offset < pos:
                raise BadBackupError(
                    f"the backup is inconsistent: {p.name} overlaps the previous part of "
                    f"{path!r} by {pos - p.offset} bytes; make a new backup"
                )
            if p.offset > pos:
                raise BadBackupError(
                    f"the backup is incomplete: {path!r} has a gap of {p.offset - pos} bytes "
                    f"before {p.name}; rerun the backup to repair it"
                )
            pos = p.end
        if pos != file_size:
            raise BadBackupError(
                f"the backup is incomplete: the parts of {path!r} cover {pos} of its "
                f"{file_size} bytes; rerun the backup to repair it"
            )
