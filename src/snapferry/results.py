"""What each action returns: the summary the CLI prints (and --json emits)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BackupResult:
    src: str
    dst: str
    origin: str | None
    backup_bytes: int
    uploaded_bytes: int
    copied_bytes: int  # server-side from origin
    deleted_bytes: int
    parts_uploaded: int
    parts_copied: int
    parts_deleted: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"action": "backup", **asdict(self)}


@dataclass(frozen=True, slots=True)
class RestoreResult:
    src: str
    dst: str
    backup_bytes: int
    downloaded_bytes: int
    resumed_bytes: int  # parts of partial files kept from an interrupted earlier run
    kept_bytes: int  # bytes not downloaded: whole files already there plus resumed_bytes
    deleted_bytes: int
    files_total: int
    files_written: int
    files_deleted: int
    parts_downloaded: int
    parts_verified: int  # every byte checked against the backup's checksums (in memory, or re-read by --verify)
    parts_unverified: int  # written but not checked (--no-checksums, no checksum for them, kept by a resume)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"action": "restore", **asdict(self)}


@dataclass(frozen=True, slots=True)
class CopyResult:
    src: str
    dst: str
    backup_bytes: int
    copied_bytes: int
    deleted_bytes: int
    parts_copied: int
    parts_deleted: int
    server_side: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"action": "copy", **asdict(self)}


@dataclass(frozen=True, slots=True)
class PlannedFile:
    path: str
    bytes: int


@dataclass(frozen=True, slots=True)
class RestoreDryRun:
    """What `restore --dry-run` found: the plan, after every precheck, nothing changed."""

    src: str
    dst: str
    dst_exists: bool
    backup_bytes: int
    files_total: int
    delete: tuple[PlannedFile, ...]  # files and symlinks the backup lacks
    delete_tmp: tuple[str, ...]  # stale .tmp files and journals of an earlier run
    download: tuple[PlannedFile, ...]  # files to write, with the bytes still to download
    parts_to_download: int
    bytes_to_download: int
    bytes_kept: int  # of the backup, already in place
    space_needed: int
    space_free: int
    space_freed: int  # given back by the deletions before any download
    seconds: float

    @property
    def bytes_to_delete(self) -> int:
        return sum(f.bytes for f in self.delete)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bytes_to_delete"] = self.bytes_to_delete
        d["space_available"] = self.space_free + self.space_freed
        return {"action": "restore", "dry_run": True, **d}


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


@dataclass(frozen=True, slots=True)
class Problem:
    part: str  # the object's name relative to the backup root
    kind: ProblemKind
    expected: str
    found: str

    def to_dict(self) -> dict[str, str]:
        return {"part": self.part, "kind": self.kind.value, "expected": self.expected, "found": self.found}

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.part}: expected {self.expected}, found {self.found}"


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
