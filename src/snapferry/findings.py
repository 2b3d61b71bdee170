"""What the read-only actions report: verify's problems and result, info's backups.

Apart from results.py so a backup or restore does not create these classes at start-up.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from .results import PartitionSize


class ProblemKind(enum.Enum):
    """What `verify` found wrong with a backup (the `kind` of each problem in --json)."""

    INCOMPLETE = "incomplete"  # no completion marker
    JUNK = "junk"  # an object under the prefix that is neither a part nor a marker
    UNSAFE_PATH = "unsafe_path"
    SIZE = "size"  # the object's real length differs from the size in its name
    GAP = "gap"
    OVERLAP = "overlap"  # parts overlapping, or disagreeing on their file's size
    MISSING = "missing"  # listed in the manifest, absent from the store
    UNLISTED = "unlisted"  # a part the manifest does not list
    MANIFEST = "manifest"  # the manifest is missing, unreadable or malformed
    CHECKSUM = "checksum"  # the store's own checksum differs from the manifest
    CONTENT = "content"  # the bytes read differ from the manifest
    NO_PARTS = "no_parts"  # only markers: a restore of it would empty the target
    SYMLINK = "symlink"  # fs://: a part or directory of the backup is a symlink
    METADATA = "metadata"  # backup_metadata.ignore unreadable, or lost with the manifest


@dataclass(frozen=True, slots=True)
class Problem:
    part: str  # the object's name relative to the backup root
    kind: ProblemKind
    expected: str
    found: str

    def to_dict(self) -> dict[str, str]:
        return {"part": self.part, "kind": self.kind.value, "expected": self.expected, "found": self.found}

    def __str__(self) -> str:
        # A name with a newline (junk from a hostile store) would split the one error line.
        part = self.part if self.part.isprintable() else repr(self.part)
        return f"{self.kind.value}: {part}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    src: str
    made_by: str  # "snapferry" or "vmbackup"
    complete: bool
    manifest_version: int  # 0: no readable manifest
    backup_bytes: int
    files: int
    parts: int
    parts_with_checksums: int
    parts_provider_checked: int  # compared with the checksum the store keeps
    parts_read: int  # --read-data
    bytes_read: int
    subset: str | None  # the N/M slice read, when --read-data-subset
    problems: list[Problem]
    seconds: float
    created_at: str | None = None  # from backup_metadata.ignore
    # an encrypted backup's metadata matched the digest in its sealed manifest (docs/encryption.md)
    metadata_authenticated: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "problems"}
        return {"action": "verify", **d, "problems": [p.to_dict() for p in self.problems]}


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup: the one at --src, or one of a vmbackupmanager layout below it."""

    name: str  # "" for the backup at --src itself, else e.g. "daily/2026-11-25"
    backup_bytes: int
    files: int
    parts: int
    created_at: str | None
    completed_at: str | None
    created_by: str  # "snapferry <version>" or "vmbackup"
    complete: bool
    checksummed: bool
    manifest_version: int
    # the index layout (partitions.Layout's value) and the month partitions with
    # their bytes in the backup, for a partial restore
    layout: str = "none"
    partitions: tuple[PartitionSize, ...] = ()
    # an encrypted backup's metadata (its times) matched the digest in its sealed manifest
    metadata_authenticated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class InfoResult:
    src: str
    backup: BackupInfo | None  # None when --src holds no backup of its own (a manager root)
    backups: list[BackupInfo]  # the backups of a manager layout below --src

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": "info", "src": self.src,
            "backup": self.backup.to_dict() if self.backup else None,
            "backups": [b.to_dict() for b in self.backups],
        }
