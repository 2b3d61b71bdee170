"""Info: what a backup location holds, from one listing and its small files.

For a plain backup: size, files, parts, when and by what it was made, complete
or not, checksummed or not. For a vmbackupmanager layout (`latest/`,
`hourly/<date:hour>`, `daily/<date>`, `weekly/<year-week>`, `monthly/<year-month>`
below the URL) the same for every backup in it, from the same single listing.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from ..checksums import Manifest, ManifestState, parse_manifest
from ..crypto import metadata_authenticated
from ..findings import BackupInfo, InfoResult
from ..names import (
    BACKUP_COMPLETE_FILE,
    BACKUP_METADATA_FILE,
    DAILY,
    ENCRYPTED_COMPLETE_FILE,
    HOURLY,
    LATEST,
    MANIFEST_FILE,
    MONTHLY,
    WEEKLY,
)
from ..partitions import describe
from ..parts import group_by_file, is_ignored_name, parse_name
from ..remotes.base import Remote
from ..results import PartitionSize
from ..settings import RunSettings
from .opening import Where, opened, reading, refuse_encrypted

# vmbackupmanager's backup names (see docs/verifying.md)
# ("." and ".." are no names: a name from the remote is read under the URL, never above it)
_ORDER = {LATEST: 0, HOURLY: 1, DAILY: 2, WEEKLY: 3, MONTHLY: 4}
_MANAGER = re.compile(rf"({LATEST}|(?:{HOURLY}|{DAILY}|{WEEKLY}|{MONTHLY})/(?!\.\.?/)[^/]+)/")


@dataclass(frozen=True)
class Info:
    """What the backup (or the vmbackupmanager layout) at `src` holds: `Info(...).run()`.
    `src` is a URL the run opens and closes, or a remote the caller lends; with the key of
    `settings` it is read with it, and without one an encrypted backup is refused (exit 2)."""

    src: Where
    settings: RunSettings = field(default_factory=RunSettings)

    def run(self) -> InfoResult:
        key = self.settings.key
        with contextlib.ExitStack() as stack:
            remote = opened(stack, self.src, self.settings)
            if key is None:
                refuse_encrypted(remote)
            return _info_of(reading(remote, key))


def _info_of(src: Remote) -> InfoResult:
    objects = src.list_objects()
    own: list[tuple[str, int]] = []
    managed: dict[str, list[tuple[str, int]]] = {}
    for name, size in objects:
        m = _MANAGER.match(name)
        if m is None:
            own.append((name, size))
        else:
            managed.setdefault(m.group(1), []).append((name[m.end():], size))
    backup = _info(src, "", own) if own else None
    names = sorted(managed, key=lambda n: (_ORDER[n.split("/", 1)[0]], n))
    backups = [_info(src, n, managed[n]) for n in names if _is_backup(managed[n])]
    return InfoResult(src=src.url, backup=backup, backups=backups)


def _is_backup(objects: list[tuple[str, int]]) -> bool:
    return any(n in (BACKUP_COMPLETE_FILE, BACKUP_METADATA_FILE) or not is_ignored_name(n) for n, _ in objects)


def _info(src: Remote, name: str, objects: list[tuple[str, int]]) -> BackupInfo:
    prefix = f"{name}/" if name else ""
    names = {n for n, _ in objects}
    parts = [p for p in (parse_name(n, s) for n, s in objects if not is_ignored_name(n)) if p is not None]
    files = group_by_file(parts)
    months = describe(parts)
    manifest, meta = small_files(src, prefix, names)
    checksummed = manifest.state is ManifestState.PRESENT
    by = meta.get("created_by")
    created_by = str(by) if by else ("snapferry" if checksummed else "vmbackup")
    return BackupInfo(
        name=name,
        backup_bytes=sum(plist[0].file_size for plist in files.values()),
        files=len(files),
        parts=len(parts),
        created_at=_text(meta.get("created_at")),
        completed_at=_text(meta.get("completed_at")),
        created_by=created_by,
        complete=BACKUP_COMPLETE_FILE in names or ENCRYPTED_COMPLETE_FILE in names,  # an encrypted one's marker
        checksummed=checksummed,
        manifest_version=manifest.version,
        layout=months.layout.value,
        partitions=tuple(PartitionSize(p.name, p.bytes) for p in months.partitions),
        metadata_authenticated=not name and metadata_authenticated(src),
    )


def small_files(src: Remote, prefix: str, listed: Collection[str]) -> tuple[Manifest, dict[str, object]]:
    """The manifest and backup_metadata.ignore of the backup at `prefix`, read only when the
    listing (`listed`: names below `prefix`) has them: no HEAD per file, which on a real
    store costs a round trip each. The metadata is {} when absent or not a JSON object."""
    manifest = parse_manifest(src.read_file(prefix + MANIFEST_FILE) if MANIFEST_FILE in listed else None)
    meta: dict[str, object] = {}
    if BACKUP_METADATA_FILE in listed:
        try:
            loaded = json.loads(src.read_file(prefix + BACKUP_METADATA_FILE))
            meta = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            meta = {}
    return manifest, meta


def _text(v: object) -> str | None:
    return None if v is None else str(v)
