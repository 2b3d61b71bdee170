"""The `fs://` remote: a backup as a directory tree on a local filesystem."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator

from .. import beneath, directio, durable, libc
from ..errors import BadBackupError, NoSpaceError, RemoteError, UsageError
from ..names import UPLOAD_TMP_SUFFIX
from ..parts import Part, parse_listing
from ._fsio import FileRangeReader, NoBody, copy_body_direct, copy_direct, copy_small
from .base import Body, IntoBody, LocalRegion, LocalTree, Reader, Remote

_COPY_CHUNK = 8 * 1024 * 1024
# Parts this big or bigger are written with O_DIRECT (directio.py) from one buffer per upload.
_DIRECT_MIN = 64 * 1024
_NO_LINKS = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS
# What openat2 answers for a path out of the root (EXDEV), or where it cannot run (ENOSYS
# before Linux 5.6, EPERM under some seccomp filters); with RESOLVE_NO_SYMLINKS, also a
# path through a symlink (ELOOP). Those names get the full check in Python instead.
_NOT_BENEATH = (errno.EXDEV, errno.ENOSYS, errno.EPERM)
_LINK_ERRORS = (errno.ELOOP, *_NOT_BENEATH)

log = logging.getLogger("snapferry")


@contextlib.contextmanager
def _fs_errors(what: str, path: str) -> Iterator[None]:
    """Turn OSError into one sentence naming the path (ENOSPC keeps its own exit code)."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise NoSpaceError(f"no space left to {what} {path!r}; free space and rerun") from e
        raise RemoteError(f"cannot {what} {path!r}: {e.strerror}; check the path and its permissions") from e


class FsRemote(LocalTree):
    """A Remote that is also a LocalTree: the backup is a directory here."""

    def __init__(self, root: str, _top: FsRemote | None = None, _sub: str = "") -> None:
        if not os.path.isabs(root):
            raise UsageError(f"fs://{root} is a relative path; fs:// needs an absolute one")
        self.root = root
        self.url = f"fs://{root}"
        self._norm_root = os.path.normpath(root)
        # A child (child()) is a directory below the root the user named (the top): the
        # top may be reached through symlinks the user chose, the path from it to the child
        # never is (see _check_root). Its real root is the top's joined with the path, not
        # resolved: a name that resolves through a link is then outside it.
        self._top = _top
        self._sub = _sub
        self._real_root: str = (
            os.path.join(_top._real_root, _sub) if _top is not None else os.path.realpath(root)
        )
        # A child's own root is checked on each use, never cached (see _real_dir).
        self._real_dirs: dict[str, str] = {} if _top is not None else {self._norm_root: self._real_root}
        # Directories uploads made or found, by normalised path: their real paths (see _upload_dir).
        self._upload_dirs: dict[str, str] = {}
        self._root_made = False  # copy_part made (or found) the root below the top
        # The symlinks the last listing met (verify reports them: see listed_symlinks).
        self._links: list[str] = []
        # One O_PATH descriptor of the real root per run, opened when first needed (an
        # upload may have to make the root first); parts are opened and written below it.
        self._root_fd = -1
        self._root_lock = threading.Lock()
        self._root_closer: weakref.finalize[[int], FsRemote] | None = None

    def __repr__(self) -> str:
        return self.url

    def child(self, sub: str) -> FsRemote:
        """The backup in the directory `sub` below the root (validated by the caller). No
        component of `sub` is ever followed as a symlink: the manager's backups are children,
        and a link `daily/<today>` to a directory elsewhere must not be written into."""
        top = self._top or self
        rel = os.path.normpath(os.path.join(self._sub, sub))
        if os.path.isabs(rel) or rel in (".", "..") or rel.startswith("../"):
            raise _outside(sub, self.url)
        return FsRemote(f"{self.root.rstrip('/')}/{sub}", _top=top, _sub=rel)

    def _check_root(self) -> bool:
        """Whether a child's root exists; a child reached through a symlink (or a file in
        its place) is an error naming it. The top (the root the user named) is taken as is.
        One openat2 below the top's descriptor: the kernel refuses every link on the way."""
        top = self._top
        if top is None:
            return os.path.isdir(self.root)
        try:
            fd = beneath.open_dir(top._root_dir(), self._sub)
        except FileNotFoundError:
            return False
        except OSError as e:
            if beneath.is_link_error(e):
                raise _linked(self.root, top.url) from e
            raise RemoteError(f"cannot open {self.url}: {e.strerror}; check the path and its permissions") from e
        os.close(fd)
        return True

    def _make_root(self) -> None:
        """Create the root if missing; a child's directories one at a time below the top's
        descriptor, never through a symlink (os.makedirs would create them at its target)."""
        top = self._top
        if top is None:
            os.makedirs(self._real_root, exist_ok=True)
            return
        os.makedirs(top._real_root, exist_ok=True)
        try:
            os.close(beneath.make_dirs(top._root_dir(), self._sub))
        except OSError as e:
            if beneath.is_link_error(e):
                raise _linked(self.root, top.url) from e
            raise

    def _path(self, name: str) -> str:
        """The local path of a name under the root; a name that would resolve outside it
        (absolute, `..`, or through a symlink) is refused, whatever the caller checked."""
        path = os.path.normpath(os.path.join(self.root, name))
        real = ""
        if _inside(path, self._norm_root):
            # Directories resolved once per run (a restore asks for thousands of names in a few).
            d, base = os.path.split(path)
            real = os.path.join(self._real_dir(d, keep=False), base)
            if os.path.islink(real):
                real = os.path.realpath(real)
        if not _inside(real, self._real_root):
            raise _outside(name, self.url)
        return path

    def _real_dir(self, d: str, keep: bool = True) -> str:
        """realpath(d) for a normalised d at or below the root, one lstat per new directory.

        vmbackup's layout gives every part a directory of its own, so a restore of 30,000
        small files meets 30,000 directories: a full realpath of each (an lstat per path
        component) was 40 % of that restore's CPU. A directory's real path is its parent's
        real path joined with its name unless the name is a symlink, so only the new
        component is looked at.

        `keep=False` for a part's own directory (named after its file, so it holds the
        parts of one file only): looked at, not cached, so the cache holds the directories
        shared by many files and does not grow by one entry per restored file (100,000
        small files kept 120,000 paths, 35 MiB)."""
        real = self._real_dirs.get(d)
        if real is None:
            if d == self._norm_root:  # a child's root (the top's is cached from the start)
                self._check_root()
                return self._real_root
            if not _inside(d, self._norm_root):  # the root's own parent: not cached
                return os.path.realpath(d)
            parent, base = os.path.split(d)
            real = os.path.join(self._real_dir(parent), base)
            if os.path.islink(real):
                real = os.path.realpath(real)
            if keep:
                self._real_dirs[d] = real
        return real

    def list_parts(self) -> list[Part]:
        if self._top is not None and not self._check_root():
            return []
        if not os.path.exists(self.root):
            return []
        if not os.path.isdir(self.root):
            raise UsageError(f"{self.url} is not a directory; point it at a backup directory")
        return parse_listing(self._files(), len(self.root.rstrip("/")) + 1)

    def _files(self) -> Iterator[tuple[str, int]]:
        """(path, size) of every file below the root but uploads in progress.

        What os.walk yields (symlinked directories are not entered; a symlink to a file
        counts with its target's size), without os.walk's lstat of every directory: a
        backup of 30,000 small files has 36,000 of them, and a nothing-changed run spent
        a third of its time in that walk."""
        stack = [self.root]
        strip = len(self.root.rstrip("/")) + 1
        links: list[str] = []
        self._links = links
        while stack:
            try:
                it = os.scandir(stack.pop())
            except OSError:
                continue  # gone meanwhile, or unreadable: os.walk skips it too
            with it:
                for e in it:
                    try:
                        is_dir = e.is_dir()  # d_type: no syscall unless e is a symlink
                    except OSError:
                        is_dir = False
                    if is_dir:
                        if not e.is_symlink():
                            stack.append(e.path)
                        else:
                            links.append(e.path[strip:])
                            log.warning("skipping %s: a symlink below %s is never followed", e.path, self.url)
                    elif not e.name.endswith(UPLOAD_TMP_SUFFIX):
                        if e.is_symlink():
                            links.append(e.path[strip:])
                        try:
                            yield e.path, e.stat().st_size
                        except FileNotFoundError:
                            continue

    def listed_symlinks(self) -> list[str]:
        return list(self._links)

    def part_path(self, part: Part) -> str:
        return self._path(part.name)

    def list_objects(self) -> list[tuple[str, int]]:
        """Every file below the root, parts or not (verify names the junk); no checksums kept."""
        if not self._check_root():
            return []
        strip = len(self.root.rstrip("/")) + 1
        return [(name[strip:], size) for name, size in self._files()]

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        if length is None:
            length = part.size - offset
        try:
            return FileRangeReader(self._open_inside(part.name), offset, length)
        except OSError as e:
            raise RemoteError(f"cannot read {part.name} from {self.url}: {e.strerror}") from e

    def _root_dir(self) -> int:
        """The root's O_PATH descriptor (see __init__); closed by close() or, for a remote
        nobody closes, when it is collected."""
        fd = self._root_fd
        if fd < 0:
            with self._root_lock:
                if self._root_fd < 0:
                    self._root_fd = self._open_root()
                    self._root_closer = weakref.finalize(self, os.close, self._root_fd)
                fd = self._root_fd
        return fd

    def _open_root(self) -> int:
        top = self._top
        if top is None:
            return os.open(self._real_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return beneath.open_dir(top._root_dir(), self._sub)
        except OSError as e:
            if beneath.is_link_error(e):
                raise _linked(self.root, top.url) from e
            raise

    def _open_inside(self, name: str) -> int:
        """A read descriptor of name, never outside the root, in one syscall when the path
        holds no symlink: openat2 below the root's descriptor refuses `..`, absolute names
        and every symlink in the kernel. A restore of 30,000 small files made an lstat of
        each part's directory and another of each part for links a backup almost never
        holds. A name that meets a link gets `_path`'s full check instead: a link may stay
        inside the root."""
        try:
            return libc.openat2(self._root_dir(), name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0, _NO_LINKS)
        except OSError as e:
            if e.errno not in _LINK_ERRORS:
                raise
        path = os.path.normpath(os.path.join(self.root, name))
        real = ""
        if _inside(path, self._norm_root):
            d, base = os.path.split(path)
            real = os.path.join(self._real_dir(d, keep=False), base)
        if not _inside(real, self._real_root):
            raise _outside(name, self.url)
        try:
            return os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
        return os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)  # a link: the full check

    def upload_part(
        self,
        part: Part,
        body: Body,
        local: LocalRegion | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int] | None:
        path = os.path.normpath(os.path.join(self.root, part.name))
        with _fs_errors("write", path):
            dst = self._upload_path(part.name, path)
            return self._upload(part, body, local, progress, dst)

    def _upload_path(self, name: str, path: str) -> str:
        """Where an upload writes `name`: its directory made (and checked to stay inside the
        root, also through symlinks) on the way. The final name needs no check: the part is
        written to a temporary name opened with O_NOFOLLOW and renamed over whatever is
        there, which replaces a symlink instead of writing through it."""
        if not _inside(path, self._norm_root):
            raise _outside(name, self.url)
        d, base = os.path.split(path)
        return os.path.join(self._upload_dir(d, name), base)

    def _upload_dir(self, d: str, name: str) -> str:
        """The real path of directory d (the root or below it), created if missing.

        One mkdir per new directory, and nothing to resolve when it succeeds (a directory
        this run made holds no symlink): a backup of 30,000 small files makes 30,000 part
        directories, and realpath of each cost eight lstat calls."""
        real = self._upload_dirs.get(d)
        if real is not None:
            return real
        if d == self._norm_root:
            self._make_root()
            real = self._real_root
        else:
            parent, base = os.path.split(d)
            real = os.path.join(self._upload_dir(parent, name), base)
            try:
                os.mkdir(real, 0o755)
            except FileExistsError:
                if os.path.islink(real):
                    real = os.path.realpath(real)
                    if not _inside(real, self._real_root):
                        raise _outside(name, self.url) from None
        self._upload_dirs[d] = real
        return real

    def _upload(
        self, part: Part, body: Body, local: LocalRegion | None, progress: Callable[[int], None] | None, dst: str
    ) -> list[int] | None:
        """Write the part to a temporary name and rename it; the block CRCs of a local
        region (taken from the buffer the bytes passed through), None for a body."""
        # Renamed into place only when whole, so a killed upload never leaves a torn part.
        # Durability comes from one syncfs in sync(), before the completion marker,
        # instead of an fsync per part and per directory; writeback starts per big part.
        tmp = dst + UPLOAD_TMP_SUFFIX
        fd = self._open_tmp(part.name, tmp)
        crcs: list[int] | None = None
        try:
            written = 0
            if local is not None and not directio.wanted(_DIRECT_MIN, part.size):
                written, crcs = copy_small(local, fd, part.size, progress)
            elif local is not None:
                # The file fd holds, not whatever the name means by now.
                dfd = directio.open_direct(f"/proc/self/fd/{fd}", os.O_WRONLY)
                try:
                    written, crcs = copy_direct(local, fd, dfd, part.size, progress)
                finally:
                    if dfd >= 0:
                        os.close(dfd)
            elif isinstance(body, IntoBody):
                dfd = directio.open_direct(f"/proc/self/fd/{fd}", os.O_WRONLY) if directio.wanted(
                    _DIRECT_MIN, part.size) else -1
                try:
                    written = copy_body_direct(body, fd, dfd, part.size, progress)
                finally:
                    if dfd >= 0:
                        os.close(dfd)
            else:
                while written < part.size:
                    chunk = body.read(min(_COPY_CHUNK, part.size - written))
                    if not chunk:
                        break
                    os.write(fd, chunk)
                    written += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if written != part.size:
                raise RemoteError(
                    f"short upload of {part.name} to {self.url}: {written} of {part.size} bytes"
                )
            if written >= _DIRECT_MIN:
                # Small parts are left to the one syncfs: a syscall per small file costs more
                # than the writeback it would start early.
                durable.start_writeback(fd, 0, written)
        except BaseException:
            os.close(fd)
            _unlink_quiet(tmp)
            raise
        os.close(fd)
        os.rename(tmp, dst)
        return crcs

    def _open_tmp(self, name: str, tmp: str) -> int:
        """The upload's temporary file, opened for writing, never outside the root.

        Directories are checked once per run (_upload_dir), so one swapped for a symlink
        since then would be written through; openat2 with RESOLVE_BENEATH checks every
        component again, in the kernel, in the same open. It refuses every absolute
        symlink, also one that stays inside the root: those get the full check here."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return libc.openat2(self._root_dir(), name + UPLOAD_TMP_SUFFIX, flags, 0o644, libc.RESOLVE_BENEATH)
        except OSError as e:
            if e.errno not in _NOT_BENEATH:
                raise
        real = os.path.realpath(os.path.dirname(tmp))
        if real != self._real_root and not _inside(real, self._real_root):
            raise _outside(name, self.url)
        return os.open(tmp, flags, 0o644)

    def delete_part(self, part: Part) -> None:
        with _fs_errors("delete", self._path(part.name)):
            _unlink_quiet(self._path(part.name))

    def can_copy_from(self, src: Remote) -> bool:
        return isinstance(src, FsRemote)

    def copy_part(self, src: Remote, part: Part) -> None:
        assert isinstance(src, FsRemote)
        s = src._path(part.name)
        d = self._path(part.name)
        with _fs_errors("copy to", d):
            if not self._root_made:  # once per run, not per part: a copy links thousands
                self._make_root()
                self._root_made = True
            self._copy(s, d, part)

    def _copy(self, s: str, d: str, part: Part) -> None:
        os.makedirs(os.path.dirname(d), exist_ok=True)
        _unlink_quiet(d)
        try:
            # Parts are immutable, so a hard link is a safe and instant copy.
            os.link(s, d)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            self._upload(part, NoBody(part.size), LocalRegion(s, 0, part.size), None, d)

    def has_file(self, name: str) -> bool:
        return os.path.isfile(self._path(name))

    def read_file(self, name: str) -> bytes:
        with _fs_errors("read", self._path(name)), open(self._path(name), "rb") as f:
            return f.read()

    def write_file(self, name: str, data: bytes) -> None:
        with _fs_errors("write", self._path(name)):
            self._make_root()
            durable.write_file_atomic(self._path(name), data)

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        with _fs_errors("create", path):
            self._make_root()
            # Written in full under a unique name, then linked: a reader never sees it empty.
            tmp = f"{path}.{uuid.uuid4().hex}{UPLOAD_TMP_SUFFIX}"
            durable.write_file_atomic(tmp, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
            durable.fsync_dir(self.root)
            return True

    def delete_file(self, name: str) -> None:
        path = self._path(name)
        with _fs_errors("delete", path):
            if os.path.exists(path):
                os.unlink(path)
                durable.fsync_dir(os.path.dirname(path))

    def sync(self) -> None:
        if self._check_root():
            with _fs_errors("sync", self.root):
                durable.syncfs(self.root)

    def prune_empty_dirs(self) -> None:
        if self._check_root():
            durable.remove_empty_dirs(self.root, keep_root=True)

    def close(self) -> None:
        with self._root_lock:
            closer, self._root_closer, self._root_fd = self._root_closer, None, -1
        if closer is not None:
            closer()


def _outside(name: str, url: str) -> BadBackupError:
    return BadBackupError(
        f"{name!r} would resolve outside {url} (absolute, '..' or through a symlink); "
        "refusing to touch it: remove that name from the backup"
    )


def _linked(path: str, top: str) -> BadBackupError:
    return BadBackupError(
        f"{path!r} is a symlink (or is reached through one) below {top}; snapferry never follows one "
        "there, so nothing outside the destination is touched: replace it with a directory or remove it"
    )


def _inside(path: str, root: str) -> bool:
    return path != root and path.startswith(root.rstrip("/") + "/")


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
