"""What the transfer actions (backup, restore, copy) return: the summary the CLI prints (and --json emits).

verify's and info's results are in findings.py: every dataclass costs its creation at import
(several exec() calls each), and a restore or backup never needs those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Summary:
    """What a transfer's summary starts with, and its --json form: the action, then the fields."""

    ACTION: ClassVar[str]
    src: str
    dst: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.ACTION, **asdict(self)}


@dataclass(frozen=True, slots=True)
class BackupResult(Summary):
    ACTION = "backup"
    origin: str | None
    backup_bytes: int
    uploaded_bytes: int
    copied_bytes: int  # server-side from origin
    deleted_bytes: int
    parts_uploaded: int
    parts_copied: int
    parts_deleted: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PartitionSize:
    name: str  # YYYY_MM
    bytes: int  # in the backup: data/small, data/big and data/indexdb of that month


@dataclass(frozen=True, slots=True)
class RestoreResult(Summary):
    ACTION = "restore"
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
    # A partial restore (--partitions/--since): the month partitions brought back; () for a full one.
    partitions: tuple[PartitionSize, ...] = ()


@dataclass(frozen=True, slots=True)
class CopyResult(Summary):
    ACTION = "copy"
    backup_bytes: int
    copied_bytes: int
    deleted_bytes: int
    parts_copied: int
    parts_deleted: int
    server_side: bool
    seconds: float


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
    partitions: tuple[PartitionSize, ...] = ()  # a partial restore's months; () for a full one

    @property
    def bytes_to_delete(self) -> int:
        return sum(f.bytes for f in self.delete)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bytes_to_delete"] = self.bytes_to_delete
        d["space_available"] = self.space_free + self.space_freed
        return {"action": "restore", "dry_run": True, **d}
