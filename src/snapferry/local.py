"""Listing local directory trees: a snapshot to back up, a target to restore into."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from .errors import SnapferryError, UsageError
from .names import FLOCK_FILE, JOURNAL_SUFFIX, RESTORE_IN_PROGRESS_FILE, TMP_SUFFIX
from .parts import is_ignored_name

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
            # flock.lock at any depth: VictoriaMetrics 1.79.5 keeps one per table and per
            # index generation, and vmbackup skips them wherever they are.
            if name == FLOCK_FILE or (rel == "" and name in _SPECIAL):
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
                check_source_name(child_rel, ent.path)
                out.append(SourceFile(child_rel, ent.path, est.st_size))
        active.discard(ident)

    walk(root, "")
    return out


def check_source_name(rel: str, path: str) -> None:
    """Refuse, at backup time, a file whose name cannot come back from a backup.

    Object stores hold UTF-8 keys only; vmbackup's part-name pattern reads a backslash
    as a directory separator and a newline as the end of the name (the file would be
    silently dropped on restore); `.tmp`/`.tmp.journal` are a restore's own names.
    """
    why = None
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        why = "is not valid UTF-8, which object stores cannot hold"
    else:
        if "\n" in rel:
            why = "holds a newline, which vmbackup's part names cannot carry (vmrestore drops the file)"
        elif "\\" in rel:
            why = "holds a backslash, which vmbackup's part names read as a directory separator"
        elif rel.endswith((TMP_SUFFIX, JOURNAL_SUFFIX)):
            why = "ends in .tmp or .tmp.journal, which a restore keeps for its own in-progress files"
    if why is not None:
        shown = repr(os.fsencode(path))[1:]  # the bytes as they are, escaped, on one line
        raise UsageError(
            f"cannot back up the source file {shown}: its name {why}; rename or remove it and take a new snapshot"
        )


@dataclass(frozen=True, slots=True)
class LocalEntry:
    path: str  # relative
    size: int
    is_link: bool
    # What deleting it frees: the blocks it holds, counted once per inode and only
    # when every link to that inode goes (VictoriaMetrics snapshots are hard links).
    disk_bytes: int | None = None  # None: take size
    inode: tuple[int, int] | None = None
    nlink: int = 1


@dataclass(slots=True)
class TargetListing:
    files: dict[str, LocalEntry]  # data files (and symlinks, which a restore never keeps)
    tmp_files: list[str]  # our `.tmp` files and journals, relative
    tmp_disk_bytes: dict[str, int] = field(default_factory=dict)  # blocks each of them holds
    # Top-level names that mark a VictoriaMetrics data directory or a restore into
    # one (flock.lock, restore-in-progress, data/, indexdb/) found in the target.
    vm_markers: tuple[str, ...] = ()


_VM_DIRS = ("data", "indexdb")


def list_target(root: str) -> TargetListing:
    """Everything below the restore target, never following symlinks."""
    files: dict[str, LocalEntry] = {}
    tmp: list[str] = []
    tmp_disk: dict[str, int] = {}
    markers: list[str] = []
    if not os.path.isdir(root):
        return TargetListing(files, tmp)

    def walk(d: str, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                child = f"{rel}/{e.name}" if rel else e.name
                if rel == "" and (e.name in _SPECIAL or is_ignored_name(e.name)):
                    if e.name in _SPECIAL:
                        markers.append(e.name)
                    continue
                if e.name == FLOCK_FILE:
                    continue  # a lock file deeper down (1.79.5 keeps several) is kept, as vmrestore does
                if e.is_dir(follow_symlinks=False):
                    if rel == "" and e.name in _VM_DIRS:
                        markers.append(e.name + "/")
                    walk(e.path, child)
                elif e.is_symlink():
                    files[child] = LocalEntry(child, 0, True)
                else:
                    st = e.stat(follow_symlinks=False)
                    if e.name.endswith((TMP_SUFFIX, JOURNAL_SUFFIX)):
                        tmp.append(child)
                        tmp_disk[child] = st.st_blocks * 512
                    else:
                        files[child] = LocalEntry(
                            child, st.st_size, False, st.st_blocks * 512, (st.st_dev, st.st_ino), st.st_nlink
                        )

    walk(root, "")
    return TargetListing(files, tmp, tmp_disk, tuple(sorted(markers)))
