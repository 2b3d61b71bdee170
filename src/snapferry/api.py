"""The Python API; the CLI is a thin layer over these three functions."""

from __future__ import annotations

import logging

from . import snapshot
from .actions.backup import refuse_dst_inside, run_backup
from .actions.copy import run_copy
from .actions.restore import run_restore
from .errors import UsageError
from .parts import MAX_PART_SIZE
from .remotes import RemoteOptions, open_remote
from .restorer.downloader import Tuning
from .results import BackupResult, CopyResult, RestoreResult
from .retry import RetryPolicy
from .throttle import Throttle

log = logging.getLogger("snapferry")

DEFAULT_CONCURRENCY = 8


def backup(
    dst: str,
    src: str | None = None,
    *,
    storage_data_path: str | None = None,
    snapshot_name: str | None = None,
    snapshot_create_url: str | None = None,
    snapshot_delete_url: str | None = None,
    origin: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None,
    progress: str = "auto",
    max_part_size: int = MAX_PART_SIZE,
) -> BackupResult:
    """Back up a snapshot directory to the remote `dst`.

    The source is `src` (a directory), or `storage_data_path` with `snapshot_name`,
    or `storage_data_path` with `snapshot_create_url` (a snapshot made for this
    backup and deleted afterwards, also when the backup fails).
    """
    _positive("concurrency", concurrency)
    chosen = sum(x is not None for x in (src, snapshot_name, snapshot_create_url))
    if chosen != 1:
        raise UsageError(
            "name exactly one source: --src DIR, or --storage-data-path with --snapshot-name "
            "or --snapshot-create-url"
        )
    if (snapshot_name or snapshot_create_url) and not storage_data_path:
        raise UsageError("--snapshot-name and --snapshot-create-url need --storage-data-path")
    opts = remote_options or default_options(concurrency)
    dst_remote = open_remote(dst, opts)
    origin_remote = open_remote(origin, opts) if origin else None
    data_dir = storage_data_path or src
    assert data_dir is not None
    refuse_dst_inside(data_dir, dst_remote)

    def go(src_dir: str) -> BackupResult:
        return run_backup(
            src_dir, dst_remote, origin=origin_remote, concurrency=concurrency,
            throttle=Throttle(max_bytes_per_second), retry=retry, max_part_size=max_part_size,
            progress_mode=progress,
        )

    try:
        if src is not None:
            return go(src)
        assert storage_data_path is not None
        if snapshot_name is not None:
            return go(snapshot.snapshot_dir(storage_data_path, snapshot_name))
        assert snapshot_create_url is not None
        name = snapshot.create(snapshot_create_url)
        log.info("created snapshot %s", name)
        try:
            return go(snapshot.snapshot_dir(storage_data_path, name))
        finally:
            url = snapshot_delete_url or snapshot.delete_url_for(snapshot_create_url, name)
            snapshot.delete(url)
            log.info("deleted snapshot %s", name)
    finally:
        dst_remote.close()
        if origin_remote is not None:
            origin_remote.close()


def restore(
    src: str,
    dst: str,
    *,
    skip_backup_complete_check: bool = False,
    skip_file_preallocation: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None,
    progress: str = "auto",
    tuning: Tuning | None = None,
    verify: bool = False,
) -> RestoreResult:
    """Restore the backup at remote `src` into the directory `dst`.

    With `verify`, every file written is re-read before its rename and checked
    against the CRC32s snapferry stored at backup time.
    """
    _positive("concurrency", concurrency)
    src_remote = open_remote(src, remote_options or default_options(concurrency))
    try:
        return run_restore(
            src_remote, dst,
            preallocate=not skip_file_preallocation,
            skip_backup_complete_check=skip_backup_complete_check,
            tuning=tuning or Tuning(concurrency=concurrency),
            throttle=Throttle(max_bytes_per_second),
            retry=retry,
            progress_mode=progress,
            verify=verify,
        )
    finally:
        src_remote.close()


def copy(
    src: str,
    dst: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    skip_backup_complete_check: bool = False,
    max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None,
    src_remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None,
    progress: str = "auto",
) -> CopyResult:
    """Copy the backup at `src` to `dst` (server-side when both are on one backend)."""
    _positive("concurrency", concurrency)
    opts = remote_options or default_options(concurrency)
    s = open_remote(src, src_remote_options or opts)
    d = open_remote(dst, opts)
    try:
        return run_copy(
            s, d, concurrency=concurrency, skip_backup_complete_check=skip_backup_complete_check,
            throttle=Throttle(max_bytes_per_second), retry=retry, progress_mode=progress,
        )
    finally:
        s.close()
        d.close()


def default_options(concurrency: int) -> RemoteOptions:
    """Options for a run of `concurrency` transfers: enough pooled connections for every
    worker plus the ranged reads and listings beside them."""
    return RemoteOptions(max_connections=max(16, concurrency * 2))


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"--{name} must be at least 1, not {value}")
