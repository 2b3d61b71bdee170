"""The remote interface every backend implements, and the one capability only fs:// has.

Actions (backup, restore, copy, verify, info) only talk to the `Remote` Protocol,
so a new backend plugs in without touching them. Names passed to the *_file
methods are relative to the backup root (`backup_complete.ignore`); parts know
their own names. What only a directory on a local filesystem can do (give a
part's path for zero-copy reads, sync before the completion marker, prune empty
directories, be compared with a local directory by identity) is `LocalTree`, a
capability an action asks for once with `local_tree(remote)`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..parts import Part

if TYPE_CHECKING:
    from ..checksums import ProviderChecksum


@runtime_checkable
class Reader(Protocol):
    """A stream of bytes from a remote object (a whole part or a byte range)."""

    def readinto(self, buf: memoryview) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class ViewReader(Reader, Protocol):
    """A Reader that can also lend its next bytes in place (fs://, through O_DIRECT): the
    caller reads them from the reader's own buffer, valid until the next call, so a reader
    that only looks at the bytes (an encrypted restore decrypting them) needs no copy."""

    def view(self, n: int) -> memoryview: ...


def read_full(reader: Reader, mv: memoryview) -> int:
    """Read until mv is full or the stream ends; returns how many bytes were read."""
    got = 0
    while got < len(mv):
        n = reader.readinto(mv[got:])
        if not n:
            break
        got += n
    return got


@runtime_checkable
class FileReader(Reader, Protocol):
    """A Reader that can also move its bytes into a file in the kernel (zero-copy)."""

    def read_to_file(self, fd: int, offset: int, n: int) -> int:
        """Move up to n bytes into fd at offset; 0 at the end of the body."""
        ...


class Body(Protocol):
    """The bytes of a part to upload: exactly `size` bytes from `read`."""

    size: int

    def read(self, n: int = -1) -> bytes: ...


@runtime_checkable
class IntoBody(Body, Protocol):
    """A Body that can also write its next bytes into the caller's buffer (an encrypted
    upload seals its chunks there): backends then reuse one buffer per upload instead of
    joining the pieces `read` hands out."""

    def readinto(self, buf: memoryview) -> int:
        """The next bytes into buf (maybe fewer than fit); 0 only at the end."""
        ...


@dataclass(frozen=True, slots=True)
class LocalRegion:
    """A byte range of a local file, offered to backends that can copy zero-copy."""

    path: str
    offset: int
    size: int


@dataclass(slots=True)
class RemoteOptions:
    """Settings shared by the cloud backends; names follow vmbackup's flags."""

    custom_s3_endpoint: str | None = None
    s3_force_path_style: bool = True
    creds_file_path: str | None = None
    config_file_path: str | None = None
    config_profile: str | None = None
    s3_storage_class: str | None = None
    s3_acl: str | None = None
    s3_sse_kms_key_id: str | None = None
    s3_sse_algorithm: str | None = None  # vmbackup's -s3SSEAlgorithm; aws:kms when only a key id is given
    s3_checksum_algorithm: str | None = None
    s3_object_tags: dict[str, str] = field(default_factory=dict)
    object_metadata: dict[str, str] = field(default_factory=dict)
    # vmbackup's -deleteAllObjectVersions: a delete removes every version of the object
    # (on a versioned bucket a plain delete only hides it behind a delete marker).
    delete_all_object_versions: bool = False
    # vmbackupmanager's -backupTypeTagName: the manager tags each object it writes into a
    # backup with NAME=<type> (latest, hourly, ...); see manager/remotes.py.
    backup_type_tag_name: str = ""
    tls_insecure_skip_verify: bool = False
    # Size of one multipart chunk for large uploads.
    multipart_chunk_size: int = 16 * 1024 * 1024  # held in memory per upload: bounds backup RSS
    # Seconds without a byte before a request is abandoned (and retried).
    read_timeout: float = 60.0
    # Connections in the SDK pools; set from --concurrency.
    max_connections: int = 16

    def __post_init__(self) -> None:
        # A protective setting that cannot work stops the run before anything is written.
        if self.s3_sse_algorithm == "AES256" and self.s3_sse_kms_key_id:
            from ..errors import UsageError

            raise UsageError(
                "--s3-sse-algorithm AES256 (S3-managed keys) cannot use --s3-sse-kms-key-id; "
                "pick aws:kms for a KMS key, or drop the key id"
            )


class Remote(Protocol):
    """A backup location: `fs://`, `s3://`, `gs://` or `azblob://`.

    Close to VictoriaMetrics' RemoteFS (lib/backup/common/fs.go): parts, small
    files by name, server-side copy. fs:// extras are the LocalTree capability.
    """

    url: str

    def list_parts(self) -> list[Part]:
        """All parts under the root, with actual_size = the object's real length."""
        ...

    def list_objects(self) -> list[tuple[str, int]]:
        """(name relative to the root, real length) of every object, parts or not (verify names the junk)."""
        ...

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        """Stream `length` bytes (default: to the end) of the part from `offset` within it."""
        ...

    def upload_part(
        self, part: Part, body: Body, local: LocalRegion | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[int] | None:
        """Store exactly part.size bytes; `local` lets a backend copy zero-copy.

        Returns the CRC32 of each checksums.BLOCK of the bytes stored when the backend
        read them itself (the backup's manifest then needs no second read), else None.
        """
        ...

    def delete_part(self, part: Part) -> None: ...

    def can_copy_from(self, src: Remote) -> bool:
        """True when copy_part(src, ...) can copy server-side."""
        ...

    def copy_part(self, src: Remote, part: Part) -> None:
        """Server-side copy of a part from src (same backend kind) to here."""
        ...

    def has_file(self, name: str) -> bool: ...

    def read_file(self, name: str) -> bytes: ...

    def write_file(self, name: str, data: bytes) -> None: ...

    def create_file_exclusive(self, name: str, data: bytes) -> bool:
        """Create a small file only if it does not exist (atomically); False if it does."""
        ...

    def delete_file(self, name: str) -> None:
        """Delete a small file; no error if it does not exist."""
        ...

    def child(self, sub: str) -> Remote:
        """The backup at `sub` below this root (a name validated by the caller), sharing
        this remote's client, pools and credentials: close the parent, never the child."""
        ...

    def close(self) -> None: ...


class LocalTree(abc.ABC):
    """The capability of a remote that is a directory tree on a local filesystem (fs://).

    A backend has it by subclassing this (nominally: no attribute is guessed at);
    callers ask through `local_tree(remote)`, once, and mypy checks the rest.
    Object stores lack it: an object is durable once its PUT returned, there are
    no directories to prune and no path to read from in the kernel.
    """

    root: str  # the backup's directory, absolute

    @abc.abstractmethod
    def part_path(self, part: Part) -> str:
        """The part's file on local disk, for in-kernel copies (copy_file_range)."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Make every part written so far durable; called once before the completion marker
        (one syncfs instead of an fsync per part and per directory)."""

    @abc.abstractmethod
    def prune_empty_dirs(self) -> None:
        """Drop the directories stale-part deletion left empty (the root stays)."""

    def listed_symlinks(self) -> list[str]:
        """The names (relative to the root) of the symlinks the last listing met: a symlinked
        directory is not entered, a symlinked file is listed with its target's size."""
        return []


def local_tree(remote: Remote) -> LocalTree | None:
    """The remote's local directory tree when it is one (fs://), else None."""
    remote = _through(remote)
    return remote if isinstance(remote, LocalTree) else None


class Wrapper(abc.ABC):
    """A remote that stores through another one (crypto's EncryptedRemote): it lives where
    its inner remote does, so the overlap rules compare the inner one's place."""

    inner: Remote


class Transparent(Wrapper):
    """A wrapper that changes how requests are made, not what is stored (the retry layer,
    remotes/retrying.py): the capabilities of the remote under it are its own."""


def _through(remote: Remote) -> Remote:
    while isinstance(remote, Transparent):
        remote = remote.inner
    return remote


def innermost(remote: Remote) -> Remote:
    """The remote under every wrapper: where the bytes really are."""
    while isinstance(remote, Wrapper):
        remote = remote.inner
    return remote


class KeepsChecksums(abc.ABC):
    """The capability of a store that keeps a checksum of each object (s3://, gs://),
    which verify compares with the manifest without reading the bytes."""

    @abc.abstractmethod
    def part_checksum(self, part: Part) -> ProviderChecksum | None:
        """The checksum the store keeps for the part, or None when it keeps none for it."""


def kept_checksums(remote: Remote) -> KeepsChecksums | None:
    """The remote's own checksums when its store keeps them, else None."""
    return remote if isinstance(remote, KeepsChecksums) else None
