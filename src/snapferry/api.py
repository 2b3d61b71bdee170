"""The Python API: each function builds the run's settings (settings.RunSettings) and its
action object (actions/: Backup, Restore, Copy, Verify, Info) and runs it, as the CLI does.

Each function imports its action where it runs: a command pays only for the modules it
uses (a restore does not load the backup's snapshot API client, the manager or a cloud
SDK), which is most of a nothing-changed run's time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .crypto import load_optional_key
from .partitions import PartitionFilter
from .parts import MAX_PART_SIZE
from .remotes import RemoteOptions
from .retry import RetryPolicy
from .settings import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY  # exported: the API's default
from .settings import ProgressMode, RunSettings
from .settings import default_options as default_options  # exported: the CLI's base options
from .tuning import Tuning as Tuning  # exported: the API's knobs and defaults (a light module)

if TYPE_CHECKING:
    from .actions.swap import SwapResult
    from .findings import InfoResult, VerifyResult
    from .results import BackupResult, CopyResult, RestoreDryRun, RestoreResult
    from .snapshot import SnapshotTLS

log = logging.getLogger("snapferry")



def _settings(
    concurrency: int = DEFAULT_CONCURRENCY, remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None, max_bytes_per_second: int = 0, progress: str = "auto",
    encryption_key_file: str | None = None,
) -> RunSettings:
    """The RunSettings of the API's keyword arguments (the key file read before any remote opens)."""
    return RunSettings(concurrency=concurrency, remote_options=remote_options, retry=retry or RetryPolicy(),
                       max_bytes_per_second=max_bytes_per_second, progress=ProgressMode.of(progress),
                       key=load_optional_key(encryption_key_file))


def backup(
    dst: str,
    src: str | None = None,
    *,
    storage_data_path: str | None = None,
    snapshot_name: str | None = None,
    snapshot_create_url: str | None = None,
    snapshot_delete_url: str | None = None,
    snapshot_tls: SnapshotTLS | None = None,
    origin: str | None = None,
    # the run's settings (settings.RunSettings, with encryption_key_file):
    concurrency: int = DEFAULT_CONCURRENCY, max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None, retry: RetryPolicy | None = None, progress: str = "auto",
    max_part_size: int = MAX_PART_SIZE,
    force: bool = False,
    encrypt: bool = False,
    encryption_key_file: str | None = None,
    replace_encrypted: bool = False,
) -> BackupResult:
    """Back up a snapshot directory to the remote `dst`.

    The source is `src` (a directory), or `storage_data_path` with `snapshot_name`,
    or `storage_data_path` with `snapshot_create_url` (a snapshot made for this
    backup and deleted afterwards, also when the backup fails, or else by the next
    such run: see snapguard.py), called with `snapshot_tls` when it is https://. A `src`
    that is a VictoriaMetrics data directory is refused: LockedError while a database
    holds it, UsageError otherwise unless `force`. With `encrypt`, the backup is encrypted
    under a data key wrapped by the key in `encryption_key_file` (docs/encryption.md); without
    it, an encrypted backup at `dst` is refused (UsageError) unless `replace_encrypted`.
    """
    from .actions.backup import Backup
    from .actions.source import source_of

    run = _settings(concurrency, remote_options, retry, max_bytes_per_second, progress, encryption_key_file)
    source = source_of(src, storage_data_path, snapshot_name, snapshot_create_url, snapshot_delete_url, snapshot_tls)
    return Backup(dst, source, run, origin=origin, max_part_size=max_part_size, force=force, encrypt=encrypt,
                  replace_encrypted=replace_encrypted).run()


def restore(
    src: str,
    dst: str,
    *,
    skip_backup_complete_check: bool = False,
    skip_file_preallocation: bool = False,
    # the run's settings (settings.RunSettings, with encryption_key_file):
    concurrency: int = DEFAULT_CONCURRENCY, max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None, retry: RetryPolicy | None = None, progress: str = "auto",
    tuning: Tuning | None = None, verify: bool = False, force: bool = False, checksums: bool = True,
    partitions: str | None = None, since: str | None = None,  # a partial restore
    encryption_key_file: str | None = None,
) -> RestoreResult:
    """Restore the backup at remote `src` into the directory `dst`.

    Every downloaded byte of a part the backup's manifest lists is checked against
    its CRC32s in memory before it is written (`checksums=False` turns that off).
    With `verify`, every file written is also re-read before its rename and checked.
    Without `force`, a
    non-empty `dst` that looks like neither a VictoriaMetrics data directory nor an
    earlier restore is refused when the restore would delete files in it.

    `partitions` ("2026_11,2026_12") and `since` (a duration such as "45d", or a date)
    make it a partial restore (both: the intersection): only those month partitions and
    the files outside every partition are restored, every other partition in `dst` is
    removed; refused for a backup with the legacy global indexdb/ (docs/partial-restore.md).
    """
    from .actions.restore import Restore

    run = _settings(concurrency, remote_options, retry, max_bytes_per_second, progress, encryption_key_file)
    return Restore(src, dst, run, tuning=tuning, preallocate=not skip_file_preallocation,
                   skip_backup_complete_check=skip_backup_complete_check, verify=verify, force=force,
                   checksums=checksums, only=PartitionFilter(partitions, since)).run()


def restore_dry_run(
    src: str,
    dst: str,
    *,
    skip_backup_complete_check: bool = False,
    skip_file_preallocation: bool = False,
    remote_options: RemoteOptions | None = None, verify: bool = False, force: bool = False,
    partitions: str | None = None, since: str | None = None,  # a partial restore
    encryption_key_file: str | None = None,
) -> RestoreDryRun:
    """Every check `restore` makes and its plan, changing nothing: no directory, no
    lock file, no marker (a lock already there is taken and released, to report a
    running VictoriaMetrics)."""
    from .actions.restore import Restore

    run = _settings(remote_options=remote_options, encryption_key_file=encryption_key_file)
    return Restore(src, dst, run, preallocate=not skip_file_preallocation,
                   skip_backup_complete_check=skip_backup_complete_check, verify=verify, force=force,
                   only=PartitionFilter(partitions, since)).dry_run()


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
    encryption_key_file: str | None = None,
    replace_encrypted: bool = False,
) -> CopyResult:
    """Copy the backup at `src` to `dst` (server-side when both are on one backend); without
    a key, an encrypted backup at `dst` is refused (UsageError) unless `replace_encrypted`."""
    from .actions.copy import Copy

    run = _settings(concurrency, remote_options, retry, max_bytes_per_second, progress, encryption_key_file)
    return Copy(src, dst, run, skip_backup_complete_check=skip_backup_complete_check,
                src_remote_options=src_remote_options, replace_encrypted=replace_encrypted).run()


def verify(
    src: str,
    *,
    structure_only: bool = False,
    read_data: bool = False,
    read_data_subset: str | None = None,
    # the run's settings (settings.RunSettings, with encryption_key_file):
    concurrency: int = DEFAULT_CONCURRENCY, max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None, retry: RetryPolicy | None = None, progress: str = "auto",
    partitions: str | None = None,
    since: str | None = None,
    encryption_key_file: str | None = None,
) -> VerifyResult:
    """Check the backup at `src` where it is stored (see actions/verify.py); the result
    lists every problem found. `read_data_subset` ("5%" or "N/M") implies `read_data`."""
    from .actions.verify import Subset, Verify

    run = _settings(concurrency, remote_options, retry, max_bytes_per_second, progress, encryption_key_file)
    return Verify(src, run, structure_only=structure_only, read_data=read_data,
                  subset=Subset.parse(read_data_subset) if read_data_subset else None,
                  only=PartitionFilter(partitions, since)).run()


def partitions_swap(stage: str, dst: str, *, partitions: str | None = None) -> SwapResult:
    """The second step of a partial restore: move the month partitions a `restore
    --partitions` put into `stage` into the stopped database at `dst`, by renames
    (docs/partial-restore.md). A month `dst` already has is refused, never merged."""
    from .actions.swap import run_swap

    return run_swap(stage, dst, partitions)


def info(src: str, *, remote_options: RemoteOptions | None = None,
         encryption_key_file: str | None = None) -> InfoResult:
    """What the backup (or the vmbackupmanager layout) at `src` holds."""
    from .actions.info import Info

    return Info(src, _settings(remote_options=remote_options, encryption_key_file=encryption_key_file)).run()


def keygen(path: str) -> str:
    """Write a new random key file (mode 0600); returns its fingerprint."""
    from .crypto.keys import keygen as make

    return make(path).fingerprint


def rekey(src: str, encryption_key_file: str, new_encryption_key_file: str, *,
          remote_options: RemoteOptions | None = None) -> tuple[str, str]:
    """Wrap the data key of the encrypted backup at `src` with a new key; no part is
    rewritten. Returns the (old, new) key fingerprints."""
    from .crypto.keys import load_key
    from .crypto.remote import rekey as do_rekey

    old = load_key(encryption_key_file)
    new = load_key(new_encryption_key_file, "--new-encryption-key-file")
    remote = RunSettings(remote_options=remote_options).open(src)
    try:
        return do_rekey(remote, old, new)
    finally:
        remote.close()


