"""Listing local directory trees: a snapshot to back up, a target to restore into."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from .errors import SnapferryError, UsageError
from .parts import FLOCK_FILE, JOURNAL_SUFFIX, RESTORE_IN_PROGRESS_FILE, TMP_SUFFIX, is_ignored_name

# Files the restore target may hold that are not data: the lock, the marker,
# and our own in-progress files (resumed or removed by the restore itself).
_SPECIAL = (FLOCK_FILE, RESTORE_IN_PROGRESS_FILE)


def is_within(path: str, root: str) -> bool:
    """True when path is root or below it (both already resolved with realpath)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str  # relative, '/'-separated
    abspath: str  # where to read it (through symlinks)
    size: int


def list_source(root: str) -> list[SourceFile]:
    """Files of a snapshot, following symlinks (VictoriaMetrics snapshots are links).

    A link that points nowhere is skipped; a loop is an error, not a hang.
    """
    if not os.path.isdir(root):
        raise UsageError(f"the source {root!r} is not a directory; point --src at a snapshot")
    out: list[SourceFile] = []
    active: set[tuple[int, int]] = set()

    def walk(real_dir: str, rel: str) -> None:
        st = os.stat(real_dir)
        ident = (st.st_dev, st.st_ino)
        if ident in active:
            raise UsageError(f"the source has a symlink loop at {rel or '.'!r}; remove the loop")
        active.add(ident)
        try:
            with os.scandir(real_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError as e:
            raise SnapferryError(f"cannot read the source directory {real_dir!r}: {e.strerror}") from e
        for ent in entries:
            name = ent.name
            if rel == "" and name in _SPECIAL:
                continue
            child_rel = f"{rel}/{name}" if rel else name
            try:
                est = os.stat(ent.path)  # follows symlinks
            except FileNotFoundError:
                continue  # dangling symlink
            except OSError as err:
                raise SnapferryError(f"cannot stat the source file {ent.path!r}: {err.strerror}") from err
            if stat.S_ISDIR(est.st_mode):
                walk(os.path.realpath(ent.path) if ent.is_symlink() else ent.path, child_rel)
            elif stat.S_ISREG(est.st_mode):
                out.append(SourceFile(child_rel, ent.path, est.st_size))
        active.discard(ident)

    walk(root, "")
    return out


@dataclass(frozen=True, slots=True)
class LocalEntry:
    path: str  # relative
    size: int
    is_link: bool


@dataclass(slots=True)
class TargetListing:
    files: dict[str, LocalEntry]  # data files (and symlinks, which a restore never keeps)
    tmp_files: list[str]  # our `.tmp` files and journals, relative


def list_target(root: str) -> TargetListing:
    """Everything below the restore target, never following symlinks."""
    files: dict[str, LocalEntry] = {}
    tmp: list[str] = []
    if not os.path.isdir(root):
        return TargetListing(files, tmp)

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                child = f"{rel}/{e.name}" if rel else e.name
                if rel == "" and (e.name in _SPECIAL or is_ignored_name(e.name)):
                    continue
                if e.is_dir(follow_symlinks=False):
                    walk(e.path, child)
                elif e.is_symlink():
                    files[child] = LocalEntry(child, 0, True)
                elif e.name.endswith((TMP_SUFFIX, JOURNAL_SUFFIX)):
                    tmp.append(child)
                else:
                    files[child] = LocalEntry(child, e.stat(follow_symlinks=False).st_size, False)

    walk(root, "")
    return TargetListing(files, tmp)
