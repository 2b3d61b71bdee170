"""The remote interface every backend implements.

Actions (backup, restore, copy) only talk to this Protocol, so a new backend
plugs in without touching them. Names passed to the *_file methods are relative
to the backup root (`backup_complete.ignore`); parts know their own names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..parts import Part


@runtime_checkable
class Reader(Protocol):
    """A stream of bytes from a remote object (a whole part or a byte range)."""

    def readinto(self, buf: memoryview) -> int: ...

    def close(self) -> None: ...


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
    s3_checksum_algorithm: str | None = None
    s3_object_tags: dict[str, str] = field(default_factory=dict)
    object_metadata: dict[str, str] = field(default_factory=dict)
    tls_insecure_skip_verify: bool = False
    # Attempts (RetryPolicy) of the single requests the actions do not retry themselves:
    # listings, small files, deletes. Transfers are retried whole by the actions; the SDKs
    # make one attempt per request.
    max_attempts: int = 5
    # Size of one multipart chunk for large uploads.
    multipart_chunk_size: int = 16 * 1024 * 1024  # held in memory per upload: bounds backup RSS
    # Seconds without a byte before a request is abandoned (and retried).
    read_timeout: float = 60.0
    # Connections in the SDK pools; set from --concurrency.
    max_connections: int = 16


class Remote(Protocol):
    """A backup location: `fs://`, `s3://`, `gs://` or `azblob://`."""

    url: str

    def list_parts(self) -> list[Part]:
        """All parts under the root, with actual_size = the object's real length."""
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

    def remove_empty_dirs(self) -> None:
        """Drop empty directories (a no-op for object stores)."""
        ...

    def flush(self) -> None:
        """Make every part written so far durable (called before the completion marker).

        Object stores are durable when a PUT returns; fs:// syncs its filesystem once
        here instead of once per part.
        """
        ...

    def local_path(self, part: Part) -> str | None:
        """The part's path on local disk when it is there (fs://), for zero-copy reads."""
        ...

    def close(self) -> None: ...
