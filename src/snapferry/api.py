"""The Python API; the CLI is a thin layer over these functions.

Each function imports its action where it runs: a command pays only for the
modules it uses (a restore does not load the backup's snapshot API client, the
manager or a cloud SDK), which is most of a nothing-changed run's time.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from .crypto import Writer, load_optional_key, refuse_plaintext_over_encrypted
from .errors import SnapferryError, UsageError
from .parts import MAX_PART_SIZE
from .remotes import RemoteOptions, open_remote
from .throttle import Throttle
from .tuning import Tuning as Tuning  # exported: the API's knobs and defaults (a light module)

if TYPE_CHECKING:
    from .actions.swap import SwapResult
    from .crypto.keys import UserKey
    from .findings import InfoResult, VerifyResult
    from .partitions import PartitionFilter
    from .remotes import Remote
    from .results import BackupResult, CopyResult, RestoreDryRun, RestoreResult
    from .retry import RetryPolicy
    from .snapshot import SnapshotTLS

log = logging.getLogger("snapferry")

# Tuning holds every default the API and the CLI share: one source of truth.
DEFAULT_CONCURRENCY = Tuning().concurrency
# Below this a ranged request costs more in round trips than it moves (0 = automatic).
MIN_CHUNK_SIZE = 1024 * 1024


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
    concurrency: int = DEFAULT_CONCURRENCY,
    max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None,
    progress: str = "auto",
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
    from . import snapshot
    from .actions.backup import refuse_dst_inside, run_backup

    _positive("concurrency", concurrency)
    chosen = sum(x is not None for x in (src, snapshot_name, snapshot_create_url))
    if chosen != 1:
        raise UsageError(
            "name exactly one source: --src DIR, or --storage-data-path with --snapshot-name "
            "or --snapshot-create-url"
        )
    if src is not None and storage_data_path is not None:
        raise UsageError(
            "--src and --storage-data-path name two sources; use --src DIR alone, or --storage-data-path "
            "with --snapshot-name or --snapshot-create-url"
        )
    if (snapshot_name or snapshot_create_url) and not storage_data_path:
        raise UsageError("--snapshot-name and --snapshot-create-url need --storage-data-path")
    if snapshot_tls is not None and snapshot_tls != snapshot.SnapshotTLS() and snapshot_create_url is None:
        raise UsageError("the --snapshot-tls-* options apply to --snapshot-create-url, which is not given")
    guard = None
    if snapshot_create_url is not None:
        from .snapguard import SnapshotGuard  # fcntl, secrets: only for a run that makes a snapshot

        assert storage_data_path is not None
        guard = SnapshotGuard(storage_data_path, snapshot_create_url, snapshot_delete_url,
                              snapshot_tls or snapshot.SnapshotTLS())
        guard.check()  # before any remote is opened: a wrong path or TLS setting is a usage error
    if encrypt != bool(encryption_key_file):
        raise UsageError(
            "--encrypt needs --encryption-key-file FILE (make one with `snapferry keygen FILE`)" if encrypt else
            "--encryption-key-file is given without --encrypt; add --encrypt to encrypt this backup"
        )
    key = load_optional_key(encryption_key_file)
    opts = remote_options or default_options(concurrency)
    dst_remote = _open(dst, opts, retry)
    origin_remote = _open(origin, opts, retry) if origin else None
    if key is not None:
        from .crypto.remote import for_writing, open_encrypted

        try:
            if origin_remote is not None:
                try:
                    origin_remote = open_encrypted(origin_remote, key)
                except UsageError as e:  # said of --origin, not of the backup being made
                    raise UsageError(f"--origin: {e}; an encrypted backup copies parts only from an "
                                     "encrypted origin made with the same key") from None
            dst_remote = for_writing(dst_remote, key, origin_remote)
        except BaseException:
            dst_remote.close()
            if origin_remote is not None:
                origin_remote.close()
            raise
    data_dir = storage_data_path or _data_dir_of_snapshot(src)
    refuse_dst_inside(data_dir, dst_remote)

    def go(src_dir: str) -> BackupResult:
        return run_backup(
            src_dir, dst_remote, origin=origin_remote, concurrency=concurrency,
            throttle=Throttle(max_bytes_per_second), retry=retry, max_part_size=max_part_size,
            progress_mode=progress, force=force,
        )

    try:
        refuse_plaintext_over_encrypted(dst_remote, Writer.BACKUP, encrypted=key is not None, replace=replace_encrypted)
        if src is not None:
            return go(src)
        assert storage_data_path is not None
        if snapshot_name is not None:
            return go(snapshot.snapshot_dir(storage_data_path, snapshot_name))
        assert guard is not None
        from .snapguard import SnapshotLeft, made_snapshot

        try:
            with made_snapshot(guard, warn_after_failure=True) as name:
                result = go(snapshot.snapshot_dir(storage_data_path, name))
        except SnapshotLeft as e:  # raised only after the backup succeeded (warn_after_failure)
            # The backup is complete and good; a snapshot left behind still holds disk space
            # (its hard links keep merged-away parts), so the run fails (exit 1) and says both.
            raise SnapferryError(
                f"the backup to {result.dst} is complete, but the snapshot {e.name} is left: {e.cause}; "
                f"delete it with `curl '{e.url}'`"
            ) from e.cause
        return result
    finally:
        dst_remote.close()
        if origin_remote is not None:
            origin_remote.close()


def _data_dir_of_snapshot(src: str | None) -> str:
    """The directory no backup may land in: for a snapshot path
    `<data>/snapshots/<name>` the whole data directory, else the source itself."""
    assert src is not None
    real = os.path.realpath(src)
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        return os.path.dirname(parent)
    return src


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
    force: bool = False,
    checksums: bool = True,
    partitions: str | None = None,
    since: str | None = None,
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
    from .actions.restore import run_restore

    _positive("concurrency", concurrency)
    only = _partition_filter(partitions, since)
    tuning = tuning or Tuning(concurrency=concurrency)
    key = load_optional_key(encryption_key_file)
    src_remote = _open(src, remote_options or default_options(concurrency), retry)
    try:
        src_remote = _keyed(src_remote, key)
        return run_restore(
            src_remote, dst,
            preallocate=not skip_file_preallocation,
            skip_backup_complete_check=skip_backup_complete_check,
            tuning=tuning,
            throttle=Throttle(max_bytes_per_second),
            retry=retry,
            progress_mode=progress,
            verify=verify,
            force=force,
            checksums=checksums,
            only=only,
        )
    finally:
        src_remote.close()


def restore_dry_run(
    src: str,
    dst: str,
    *,
    skip_backup_complete_check: bool = False,
    skip_file_preallocation: bool = False,
    remote_options: RemoteOptions | None = None,
    verify: bool = False,
    force: bool = False,
    partitions: str | None = None,
    since: str | None = None,
    encryption_key_file: str | None = None,
) -> RestoreDryRun:
    """Every check `restore` makes and its plan, changing nothing: no directory, no
    lock file, no marker (a lock already there is taken and released, to report a
    running VictoriaMetrics)."""
    from .actions.restore import dry_run_restore

    only = _partition_filter(partitions, since)
    key = load_optional_key(encryption_key_file)

    src_remote = _open(src, remote_options or default_options(DEFAULT_CONCURRENCY))
    try:
        src_remote = _keyed(src_remote, key)
        return dry_run_restore(
            src_remote, dst, preallocate=not skip_file_preallocation,
            skip_backup_complete_check=skip_backup_complete_check, verify=verify, force=force,
            only=only,
        )
    finally:
        src_remote.close()


def check_chunk_size(chunk_size: int) -> None:
    """The CLI's floor for --chunk-size (Tuning itself takes any size, for tests of tiny data)."""
    if chunk_size != 0 and chunk_size < MIN_CHUNK_SIZE:
        raise UsageError(
            f"--chunk-size {chunk_size} is too small; use at least {MIN_CHUNK_SIZE} (1 MiB), or 0 for automatic"
        )


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
    from .actions.copy import run_copy

    _positive("concurrency", concurrency)
    opts = remote_options or default_options(concurrency)
    key = load_optional_key(encryption_key_file)
    s = _open(src, src_remote_options or opts, retry)
    d = _open(dst, opts, retry)
    try:
        refuse_plaintext_over_encrypted(d, Writer.COPY, encrypted=key is not None, replace=replace_encrypted, src=s)
        if key is not None:
            from .crypto.remote import for_writing

            s = _keyed(s, key)
            d = for_writing(d, key, s)  # type: ignore[arg-type]  # _keyed with a key is an EncryptedRemote
        return run_copy(
            s, d, concurrency=concurrency, skip_backup_complete_check=skip_backup_complete_check,
            throttle=Throttle(max_bytes_per_second), retry=retry, progress_mode=progress,
        )
    finally:
        s.close()
        d.close()


def verify(
    src: str,
    *,
    structure_only: bool = False,
    read_data: bool = False,
    read_data_subset: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_bytes_per_second: int = 0,
    remote_options: RemoteOptions | None = None,
    retry: RetryPolicy | None = None,
    progress: str = "auto",
    partitions: str | None = None,
    since: str | None = None,
    encryption_key_file: str | None = None,
) -> VerifyResult:
    """Check the backup at `src` where it is stored (see actions/verify.py); the result
    lists every problem found. `read_data_subset` ("5%" or "N/M") implies `read_data`."""
    from .actions.verify import Subset, VerifyOptions, run_verify

    _positive("concurrency", concurrency)
    opts = VerifyOptions(
        structure_only=structure_only, read_data=read_data or read_data_subset is not None,
        subset=Subset.parse(read_data_subset) if read_data_subset else None, concurrency=concurrency,
        progress_mode=progress, partitions=partitions, since=since,
    )
    _partition_filter(partitions, since)  # the syntax, before the remote is opened
    key = load_optional_key(encryption_key_file)
    remote = _open(src, remote_options or default_options(concurrency), retry)
    try:
        remote = _keyed(remote, key)
        result = run_verify(remote, opts, throttle=Throttle(max_bytes_per_second), retry=retry)
        if key is None and not result.complete:
            _refuse_encrypted(remote)
        return result
    finally:
        remote.close()


def partitions_swap(stage: str, dst: str, *, partitions: str | None = None) -> SwapResult:
    """The second step of a partial restore: move the month partitions a `restore
    --partitions` put into `stage` into the stopped database at `dst`, by renames
    (docs/partial-restore.md). A month `dst` already has is refused, never merged."""
    from .actions.swap import run_swap

    return run_swap(stage, dst, partitions)


def info(src: str, *, remote_options: RemoteOptions | None = None,
         encryption_key_file: str | None = None) -> InfoResult:
    """What the backup (or the vmbackupmanager layout) at `src` holds."""
    from .actions.info import run_info

    key = load_optional_key(encryption_key_file)
    remote = _open(src, remote_options or default_options(DEFAULT_CONCURRENCY))
    try:
        if key is None:
            _refuse_encrypted(remote)
        return run_info(_keyed(remote, key))
    finally:
        remote.close()


def _open(url: str, options: RemoteOptions, retry: RetryPolicy | None = None) -> Remote:
    """The remote at `url` under the run's one retry layer (remotes/retrying.py): the
    prechecks and key reads before an action are retried as the action's requests are."""
    from .remotes.retrying import with_retries
    from .retry import RetryPolicy

    return with_retries(open_remote(url, options), retry or RetryPolicy())


def _keyed(remote: Remote, key: UserKey | None) -> Remote:
    """A reader's view of `remote`: decrypted with `key`, or as it is without one."""
    if key is None:
        return remote
    from .crypto.remote import open_encrypted

    return open_encrypted(remote, key)  # on failure the caller closes `remote`, as always


def _refuse_encrypted(remote: Remote) -> None:
    from .actions.complete import encrypted_message
    from .names import ENCRYPTED_COMPLETE_FILE

    if remote.has_file(ENCRYPTED_COMPLETE_FILE):
        raise UsageError(encrypted_message(remote))


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
    remote = _open(src, remote_options or default_options(DEFAULT_CONCURRENCY))
    try:
        return do_rekey(remote, old, new)
    finally:
        remote.close()


def default_options(concurrency: int) -> RemoteOptions:
    """Options for a run of `concurrency` transfers: enough pooled connections for every
    worker plus the ranged reads and listings beside them."""
    return RemoteOptions(max_connections=max(16, concurrency * 2))


def _partition_filter(partitions: str | None, since: str | None) -> PartitionFilter:
    """Check the syntax of --partitions/--since before any remote is opened."""
    import datetime as dt

    from .partitions import PartitionFilter, parse_partition_names, parse_since

    if partitions is not None:
        parse_partition_names(partitions)
    if since is not None:
        parse_since(since, dt.datetime.now(dt.UTC))
    return PartitionFilter(partitions, since)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"--{name} must be at least 1, not {value}")
