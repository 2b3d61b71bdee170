"""The `snapferry` command line: a thin layer over snapferry.api."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from . import api
from .errors import EXIT_FAILURE, EXIT_USAGE, Interrupted, NoSpaceError, SnapferryError
from .libc import LIBC
from .parts import MAX_PART_SIZE
from .progress import human_bytes
from .remotes import RemoteOptions
from .restorer.downloader import Tuning
from .results import BackupResult, CopyResult, RestoreResult
from .retry import RetryPolicy

_M_MMAP_THRESHOLD = -3  # mallopt(3)

log = logging.getLogger("snapferry")
_ENV = "SNAPFERRY_"


def _json_map(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise click.BadParameter(f"{value!r} is not a JSON object of strings, like '{{\"team\": \"db\"}}'")
    return {str(k): v for k, v in data.items()}


def _tags(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, str]:
    """Tags as JSON ({"k": "v"}) or as vmbackup's query-string form (k=v&k2=v2)."""
    if not value:
        return {}
    if value.lstrip().startswith("{"):
        return _json_map(ctx, param, value)
    out: dict[str, str] = {}
    for item in value.split("&"):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{value!r} is not k=v&k2=v2 nor a JSON object")
        out[k] = v
    return out


def remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--custom-s3-endpoint", envvar=_ENV + "CUSTOM_S3_ENDPOINT",
                     help="S3-compatible endpoint URL, e.g. http://127.0.0.1:8333."),
        click.option("--s3-force-path-style/--no-s3-force-path-style", default=True,
                     envvar=_ENV + "S3_FORCE_PATH_STYLE", help="Path-style S3 addressing (default on)."),
        click.option("--creds-file-path", envvar=_ENV + "CREDS_FILE_PATH",
                     help="Credentials file: AWS shared credentials (s3) or service-account JSON (gs)."),
        click.option("--config-file-path", envvar=_ENV + "CONFIG_FILE_PATH", help="AWS shared config file."),
        click.option("--config-profile", envvar=_ENV + "CONFIG_PROFILE", help="AWS profile name."),
        click.option("--s3-storage-class", envvar=_ENV + "S3_STORAGE_CLASS", help="e.g. STANDARD_IA."),
        click.option("--s3-acl", envvar=_ENV + "S3_ACL", help="Canned ACL for new objects."),
        click.option("--s3-sse-kms-key-id", envvar=_ENV + "S3_SSE_KMS_KEY_ID", help="SSE-KMS key id."),
        click.option("--s3-checksum-algorithm", envvar=_ENV + "S3_CHECKSUM_ALGORITHM",
                     help="CRC32, CRC32C, SHA1 or SHA256."),
        click.option("--s3-object-tags", envvar=_ENV + "S3_OBJECT_TAGS", callback=_tags,
                     help='Tags for new objects: k=v&k2=v2 or {"k": "v"}.'),
        click.option("--object-metadata", envvar=_ENV + "OBJECT_METADATA", callback=_json_map,
                     help='User metadata for new objects, JSON: {"k": "v"}.'),
        click.option("--tls-insecure-skip-verify", is_flag=True, envvar=_ENV + "TLS_INSECURE_SKIP_VERIFY",
                     help="Do not verify TLS certificates (test setups only)."),
        click.option("--retries", type=click.IntRange(1, 100), default=6, show_default=True,
                     envvar=_ENV + "RETRIES",
                     help="Attempts per part or range without progress, on transient errors."),
        click.option("--read-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
                     envvar=_ENV + "READ_TIMEOUT", help="Seconds without a byte before a request is retried."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--concurrency", type=click.IntRange(1, 256), default=api.DEFAULT_CONCURRENCY,
                     show_default=True, envvar=_ENV + "CONCURRENCY", help="Parallel transfers."),
        click.option("--max-bytes-per-second", type=click.IntRange(0), default=0,
                     envvar=_ENV + "MAX_BYTES_PER_SECOND", help="Bandwidth limit; 0 means none."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
        click.option("--progress", type=click.Choice(["auto", "bar", "log", "off"]), default="auto",
                     help="A bar on a TTY, log lines otherwise (auto)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _opts(kw: dict[str, Any], concurrency: int) -> RemoteOptions:
    return dataclasses.replace(
        api.default_options(concurrency),
        custom_s3_endpoint=kw.pop("custom_s3_endpoint"),
        s3_force_path_style=kw.pop("s3_force_path_style"),
        creds_file_path=kw.pop("creds_file_path"),
        config_file_path=kw.pop("config_file_path"),
        config_profile=kw.pop("config_profile"),
        s3_storage_class=kw.pop("s3_storage_class"),
        s3_acl=kw.pop("s3_acl"),
        s3_sse_kms_key_id=kw.pop("s3_sse_kms_key_id"),
        s3_checksum_algorithm=kw.pop("s3_checksum_algorithm"),
        s3_object_tags=kw.pop("s3_object_tags"),
        object_metadata=kw.pop("object_metadata"),
        tls_insecure_skip_verify=kw.pop("tls_insecure_skip_verify"),
        read_timeout=kw.pop("read_timeout"),
        # Our own loop retries whole parts and ranges; the SDKs only smooth single requests.
        max_attempts=min(3, kw["retries"]),
    )


def _emit(result: BackupResult | RestoreResult | CopyResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    d = result.to_dict()
    secs = d["seconds"]
    if isinstance(result, RestoreResult):
        rate = result.downloaded_bytes / secs if secs > 0 else 0.0
        click.echo(
            f"restored {human_bytes(result.backup_bytes)} ({result.files_total} files) into {result.dst} "
            f"in {secs:.2f}s: downloaded {human_bytes(result.downloaded_bytes)} "
            f"({human_bytes(rate)}/s), kept {human_bytes(result.resumed_bytes)} from an earlier run, "
            f"deleted {human_bytes(result.deleted_bytes)} ({result.files_deleted} files)",
            err=True,
        )
    elif isinstance(result, BackupResult):
        click.echo(
            f"backed up {human_bytes(result.backup_bytes)} to {result.dst} in {secs:.2f}s: "
            f"uploaded {human_bytes(result.uploaded_bytes)} ({result.parts_uploaded} parts), "
            f"copied {human_bytes(result.copied_bytes)} from origin, "
            f"deleted {human_bytes(result.deleted_bytes)} ({result.parts_deleted} parts)",
            err=True,
        )
    else:
        click.echo(
            f"copied {human_bytes(result.copied_bytes)} ({result.parts_copied} parts, "
            f"{'server-side' if result.server_side else 'streamed'}) from {result.src} to {result.dst} "
            f"in {secs:.2f}s, deleted {human_bytes(result.deleted_bytes)}",
            err=True,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              envvar=_ENV + "LOG_LEVEL")
@click.version_option(package_name="snapferry")
def cli(log_level: str) -> None:
    """Back up VictoriaMetrics snapshots to fs://, s3://, gs:// or azblob:// and restore them fast."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper()), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.command()
@click.option("--src", help="Snapshot directory to back up.")
@click.option("--storage-data-path", help="VictoriaMetrics -storageDataPath (with a snapshot option).")
@click.option("--snapshot-name", help="An existing snapshot in <storage-data-path>/snapshots.")
@click.option("--snapshot-create-url", help="e.g. http://127.0.0.1:8428/snapshot/create.")
@click.option("--snapshot-delete-url", help="Defaults to the create URL with /delete.")
@click.option("--dst", required=True, help="Where the backup goes, e.g. fs:///var/backups/vm/daily.")
@click.option("--origin", help="An older backup on the same backend to copy unchanged parts from.")
@click.option("--max-part-size", type=click.IntRange(1), default=MAX_PART_SIZE, hidden=True)
@common_options
@remote_options
def backup(**kw: Any) -> None:
    """Back up a snapshot to a remote (incremental when dst already holds a backup)."""
    as_json = kw.pop("as_json")
    opts = _opts(kw, kw["concurrency"])
    result = api.backup(
        kw["dst"], kw["src"], storage_data_path=kw["storage_data_path"], snapshot_name=kw["snapshot_name"],
        snapshot_create_url=kw["snapshot_create_url"], snapshot_delete_url=kw["snapshot_delete_url"],
        origin=kw["origin"], concurrency=kw["concurrency"], max_bytes_per_second=kw["max_bytes_per_second"],
        remote_options=opts, retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"],
        max_part_size=kw["max_part_size"],
    )
    _emit(result, as_json)


@cli.command()
@click.option("--src", required=True, help="The backup, e.g. fs:///var/backups/vm/daily.")
@click.option("--dst", required=True, help="The directory to restore into (VictoriaMetrics -storageDataPath).")
@click.option("--skip-backup-complete-check", is_flag=True, help="Restore even without the completion marker.")
@click.option("--skip-file-preallocation", is_flag=True,
              help="Write files in place (no .tmp, no fallocate); slower, resumes at part granularity.")
@click.option("--verify", is_flag=True,
              help="Check every restored file against the backup's CRC32s before it is renamed into place.")
@click.option("--max-inflight-bytes", type=click.IntRange(8 * 1024 * 1024), default=Tuning().max_inflight_bytes,
              show_default=True, help="Memory for data in flight, shared by all workers.")
@click.option("--chunk-size", type=click.IntRange(0), default=0, show_default=True,
              help="Bytes per ranged request; 0 splits each big part evenly over the workers (at least 32 MiB).")
@click.option("--direct-io/--no-direct-io", default=True, show_default=True,
              help="Write downloaded files with O_DIRECT, past the page cache (falls back where refused).")
@common_options
@remote_options
def restore(**kw: Any) -> None:
    """Restore a backup into a directory (incremental: only missing parts are fetched)."""
    as_json = kw.pop("as_json")
    opts = _opts(kw, kw["concurrency"])
    tuning = Tuning(
        concurrency=kw["concurrency"], max_inflight_bytes=kw["max_inflight_bytes"], chunk_size=kw["chunk_size"],
        direct_min=Tuning().direct_min if kw["direct_io"] else 0,
    )
    result = api.restore(
        kw["src"], kw["dst"], skip_backup_complete_check=kw["skip_backup_complete_check"],
        skip_file_preallocation=kw["skip_file_preallocation"], concurrency=kw["concurrency"],
        max_bytes_per_second=kw["max_bytes_per_second"], remote_options=opts,
        retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"], tuning=tuning,
        verify=kw["verify"],
    )
    _emit(result, as_json)


@cli.command()
@click.option("--src", required=True, help="The backup to copy.")
@click.option("--dst", required=True, help="Where the copy goes (extra parts there are deleted).")
@click.option("--skip-backup-complete-check", is_flag=True, help="Copy even without the completion marker.")
@common_options
@remote_options
def copy(**kw: Any) -> None:
    """Copy a backup between remotes (server-side on one backend, streamed across backends)."""
    as_json = kw.pop("as_json")
    opts = _opts(kw, kw["concurrency"])
    result = api.copy(
        kw["src"], kw["dst"], concurrency=kw["concurrency"],
        skip_backup_complete_check=kw["skip_backup_complete_check"],
        max_bytes_per_second=kw["max_bytes_per_second"], remote_options=opts,
        retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"],
    )
    _emit(result, as_json)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum, "")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        cli.main(args=argv, prog_name="snapferry", standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        return _interrupted(signal.SIGINT)
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except Interrupted as e:
        return _interrupted(e.signum)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except SnapferryError as e:
        click.echo(f"snapferry: error: {e}", err=True)
        return e.exit_code
    except OSError as e:
        if e.errno == errno.ENOSPC:
            where = e.filename or "the target"
            err: SnapferryError = NoSpaceError(f"no space left on the device ({where}); free space and rerun")
            click.echo(f"snapferry: error: {err}", err=True)
            return err.exit_code
        click.echo(f"snapferry: error: {e.strerror or e} ({e.filename or 'no file'})", err=True)
        return EXIT_FAILURE
    except Exception as e:  # a bug: one line, the trace only on request
        if os.environ.get("SNAPFERRY_DEBUG"):
            raise
        click.echo(
            f"snapferry: internal error: {type(e).__name__}: {e} (set SNAPFERRY_DEBUG=1 for the trace "
            "and please report it)",
            err=True,
        )
        return EXIT_FAILURE


def _interrupted(signum: int) -> int:
    name = signal.Signals(signum).name
    cmd = shlex.join(sys.argv[1:]) or "the same command"
    click.echo(
        f"snapferry: interrupted by {name}; nothing is lost and the work is resumable: rerun "
        f"`snapferry {cmd}` to continue",
        err=True,
    )
    return 128 + signum


def entry() -> None:
    _big_buffers_unmapped_when_freed()
    sys.exit(main())


def _big_buffers_unmapped_when_freed() -> None:
    """Allocations of 1 MiB and more get mappings of their own, returned when freed.

    glibc raises its mmap threshold after the first big free and then serves later
    upload chunks (16 MiB, on eight threads' arenas) from heaps it keeps: the peak
    RSS of an s3:// backup grew with the dataset (132, 172, 196 MiB at 1, 3, 6 GiB).
    A process-wide setting, so the CLI makes it, not the library.
    """
    with contextlib.suppress(AttributeError):  # not glibc: nothing to tune
        LIBC.mallopt(_M_MMAP_THRESHOLD, 1 << 20)


