"""Options and output shared by the commands (borg's archiver/_common.py, for click)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import click

from ..progress import human_bytes
from ..remotes import RemoteOptions
from ..results import BackupResult, CopyResult, PartitionSize, RestoreDryRun, RestoreResult
from ..retry import RetryPolicy
from ..settings import DEFAULT_CONCURRENCY, ProgressMode, RunSettings, default_options

ENV = "SNAPFERRY_"


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


def _http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    u = urllib.parse.urlsplit(value or "")
    if value and (u.scheme not in ("http", "https") or not u.netloc):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL")
    return value or None


def _apply(f: Callable[..., Any], opts: Sequence[Callable[[Any], Any]]) -> Callable[..., Any]:
    for o in reversed(opts):
        f = o(f)
    return f


# The key file of an encrypted backup (docs/encryption.md): a path, never the key itself,
# so the key reaches neither the process list nor a shell's history.
key_file_option = click.option(
    "--encryption-key-file", envvar=ENV + "ENCRYPTION_KEY_FILE", type=click.Path(dir_okay=False),
    help="Key file of an encrypted backup (made by `snapferry keygen`); or SNAPFERRY_ENCRYPTION_KEY_FILE.",
)


# Of the writers (backup, copy): a plain run never replaces an encrypted backup unless asked.
replace_encrypted_option = click.option(
    "--replace-encrypted", is_flag=True,
    help="Replace an encrypted backup at --dst that this run cannot keep (it is unencrypted, or under "
    "another key); refused without it.",
)


# Options of every remote: where it is, who we are, how requests are retried.
_SHARED_REMOTE = [
    click.option("--custom-s3-endpoint", envvar=ENV + "CUSTOM_S3_ENDPOINT",
                 help="S3-compatible endpoint URL, e.g. http://127.0.0.1:8333."),
    click.option("--s3-force-path-style/--no-s3-force-path-style", default=True,
                 envvar=ENV + "S3_FORCE_PATH_STYLE", help="Path-style S3 addressing (default on)."),
    click.option("--creds-file-path", envvar=ENV + "CREDS_FILE_PATH",
                 help="Credentials file: AWS shared credentials (s3) or service-account JSON (gs)."),
    click.option("--config-file-path", envvar=ENV + "CONFIG_FILE_PATH", help="AWS shared config file."),
    click.option("--config-profile", envvar=ENV + "CONFIG_PROFILE", help="AWS profile name."),
    click.option("--tls-insecure-skip-verify", is_flag=True, envvar=ENV + "TLS_INSECURE_SKIP_VERIFY",
                 help="Do not verify TLS certificates (test setups only)."),
    click.option("--retries", type=click.IntRange(1, 100), default=6, show_default=True,
                 envvar=ENV + "RETRIES",
                 help="Attempts of a remote operation on transient errors (a read counts them from its last "
                      "progress; a listing or small file gets at most 3)."),
    click.option("--read-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
                 envvar=ENV + "READ_TIMEOUT", help="Seconds without a byte before a request is retried."),
]

# Options that only shape objects a command writes (backup, copy): meaningless for a read.
_WRITE_REMOTE = [
    click.option("--s3-storage-class", envvar=ENV + "S3_STORAGE_CLASS", help="e.g. STANDARD_IA."),
    click.option("--s3-acl", envvar=ENV + "S3_ACL", help="Canned ACL for new objects."),
    click.option("--s3-sse-kms-key-id", envvar=ENV + "S3_SSE_KMS_KEY_ID", help="SSE-KMS key id."),
    click.option("--s3-sse-algorithm", envvar=ENV + "S3_SSE_ALGORITHM",
                 type=click.Choice(["aws:kms", "aws:kms:dsse", "AES256"]),
                 help="Server-side encryption of new objects (aws:kms with --s3-sse-kms-key-id by default)."),
    click.option("--s3-checksum-algorithm", envvar=ENV + "S3_CHECKSUM_ALGORITHM",
                 help="CRC32, CRC32C, SHA1 or SHA256."),
    click.option("--s3-object-tags", envvar=ENV + "S3_OBJECT_TAGS", callback=_tags,
                 help='Tags for new objects: k=v&k2=v2 or {"k": "v"}.'),
    click.option("--object-metadata", envvar=ENV + "OBJECT_METADATA", callback=_json_map,
                 help='User metadata for new objects, JSON: {"k": "v"}.'),
    click.option("--delete-all-object-versions", is_flag=True, envvar=ENV + "DELETE_ALL_OBJECT_VERSIONS",
                 help="Deletes remove every version of an object on a versioned s3:// bucket, not only the "
                      "current one."),
]


def read_remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Remote options of a command that only reads its remote (restore)."""
    return _apply(f, _SHARED_REMOTE)


def write_remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Remote options of a command that writes to a remote (backup, copy)."""
    return _apply(f, _SHARED_REMOTE + _WRITE_REMOTE)


# Kept for commands that have not chosen: everything.
remote_options = write_remote_options


def _set_log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        setup_logging(value)


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(getattr(logging, level.upper()))
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"])

# Also accepted after the subcommand (`snapferry restore ... --log-level debug`); it wins
# over the group's, which is applied first.
log_level_option = click.option(
    "--log-level", type=LOG_LEVELS, default=None, expose_value=False, callback=_set_log_level,
    is_eager=True, help="Log level (also accepted before the command).",
)


# Options of every run (backup, restore, copy, verify): its RunSettings, its output.
_RUN = [
    click.option("--concurrency", type=click.IntRange(1, 256), default=DEFAULT_CONCURRENCY,
                 show_default=True, envvar=ENV + "CONCURRENCY", help="Parallel transfers."),
    click.option("--max-bytes-per-second", type=click.IntRange(0), default=0,
                 envvar=ENV + "MAX_BYTES_PER_SECOND", help="Bandwidth limit; 0 means none."),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
    click.option("--progress", type=click.Choice([m.value for m in ProgressMode]), default=ProgressMode.AUTO.value,
                 help="A bar on a TTY, log lines otherwise (auto)."),
    click.option("--push-metrics-url", envvar=ENV + "PUSH_METRICS_URL", callback=_http_url,
                 help="POST Prometheus metrics of the run here when it ends, e.g. a Pushgateway's "
                      "/metrics/job/snapferry or VictoriaMetrics' /api/v1/import/prometheus."),
    log_level_option,
]


def run_options(*, writes: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every option of a run's settings (settings_from reads them): the key file, the run's
    own, and the remote's (with those of new objects when the command `writes`)."""
    remote = _SHARED_REMOTE + (_WRITE_REMOTE if writes else [])
    return lambda f: _apply(f, [key_file_option, *_RUN, *remote])


def settings_from(kw: dict[str, Any]) -> RunSettings:
    """The run's RunSettings from a command's options, taken out of `kw`: the one place the CLI
    builds it. A command without some of them (info has no --concurrency) gets their defaults."""
    from ..crypto import load_optional_key

    concurrency: int = kw.pop("concurrency", DEFAULT_CONCURRENCY)
    return RunSettings(
        concurrency=concurrency,
        remote_options=options_from(kw, concurrency),
        retry=RetryPolicy(attempts=kw.pop("retries")),
        max_bytes_per_second=kw.pop("max_bytes_per_second", 0),
        progress=ProgressMode(kw.pop("progress", ProgressMode.AUTO)),
        key=load_optional_key(kw.pop("encryption_key_file", None)),  # before any remote is opened
    )


def options_from(kw: dict[str, Any], concurrency: int) -> RemoteOptions:
    base = default_options(concurrency)
    # A read-only command has no write options: the defaults stand for them.
    write = {
        name: kw.pop(name) if name in kw else getattr(base, name)
        for name in ("s3_storage_class", "s3_acl", "s3_sse_kms_key_id", "s3_sse_algorithm", "s3_checksum_algorithm",
                     "s3_object_tags", "object_metadata", "delete_all_object_versions")
    }
    return dataclasses.replace(
        base,
        custom_s3_endpoint=kw.pop("custom_s3_endpoint"),
        s3_force_path_style=kw.pop("s3_force_path_style"),
        creds_file_path=kw.pop("creds_file_path"),
        config_file_path=kw.pop("config_file_path"),
        config_profile=kw.pop("config_profile"),
        tls_insecure_skip_verify=kw.pop("tls_insecure_skip_verify"),
        read_timeout=kw.pop("read_timeout"),
        **write,
    )


class RunSink(Protocol):
    """Where a command puts its result for --push-metrics-url (pushmetrics.RunRecord)."""

    result: BackupResult | RestoreResult | CopyResult | None


class _Unpushed:
    """A run nobody pushes (a plain class: a dataclass would cost its creation at start-up)."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: BackupResult | RestoreResult | CopyResult | None = None


@contextlib.contextmanager
def metrics_pushed(url: str | None, action: str) -> Iterator[RunSink]:
    """pushmetrics.pushed when --push-metrics-url is given; otherwise nothing to record,
    and the push-metrics module (an enum, a dataclass, a logging filter) is not loaded."""
    if not url:
        yield _Unpushed()
        return
    from ..pushmetrics import Action, pushed

    with pushed(url, Action(action)) as run:
        yield run


class Transfer(Protocol):
    """An action object whose result --push-metrics-url pushes (actions/: Backup, Restore, Copy)."""

    def run(self) -> BackupResult | RestoreResult | CopyResult: ...


def run_pushed(kw: dict[str, Any], action: str, make: Callable[[RunSettings], Transfer]) -> None:
    """Run the action `make` builds from the command's RunSettings, push the run's metrics
    (--push-metrics-url: a failure too, a bad key file included) and print its result."""
    as_json = kw.pop("as_json")
    with metrics_pushed(kw.pop("push_metrics_url"), action) as run:
        result = make(settings_from(kw)).run()
        run.result = result
    emit(result, as_json)


def emit(result: BackupResult | RestoreResult | CopyResult | RestoreDryRun, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if isinstance(result, RestoreDryRun):
        emit_dry_run(result)
        return
    d = result.to_dict()
    secs = d["seconds"]
    if isinstance(result, RestoreResult):
        rate = result.downloaded_bytes / secs if secs > 0 else 0.0
        click.echo(
            f"restored {human_bytes(result.backup_bytes)} ({result.files_total} files) into {result.dst} "
            f"in {secs:.2f}s: downloaded {human_bytes(result.downloaded_bytes)} "
            f"({human_bytes(rate)}/s), kept {human_bytes(result.kept_bytes)} from an earlier run, "
            f"deleted {human_bytes(result.deleted_bytes)} ({result.files_deleted} files), "
            f"{result.parts_verified} parts checksum-verified, {result.parts_unverified} unverified",
            err=True,
        )
        if result.partitions:
            click.echo(f"partial restore: {_partition_list(result.partitions)}", err=True)
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


def emit_dry_run(r: RestoreDryRun) -> None:
    """The plan, one line per file on stdout (like rsync --dry-run), the summary on stderr."""
    for f in r.delete:
        click.echo(f"delete {f.path} ({human_bytes(f.bytes)})")
    for t in r.delete_tmp:
        click.echo(f"discard {t}")
    for f in r.download:
        click.echo(f"download {f.path} ({human_bytes(f.bytes)})")
    if r.partitions:
        click.echo(f"partial restore: {_partition_list(r.partitions)}", err=True)
    click.echo(
        f"dry run: restoring {r.src} into {r.dst}{'' if r.dst_exists else ' (to be created)'} would delete "
        f"{len(r.delete)} files ({human_bytes(r.bytes_to_delete)}), download {human_bytes(r.bytes_to_download)} "
        f"in {r.parts_to_download} parts for {len(r.download)} files and keep {human_bytes(r.bytes_kept)}; "
        f"free space needed {human_bytes(r.space_needed)}, available {human_bytes(r.space_free + r.space_freed)} "
        f"({human_bytes(r.space_free)} free + {human_bytes(r.space_freed)} freed by deletions); nothing was changed",
        err=True,
    )


def _partition_list(parts: tuple[PartitionSize, ...]) -> str:
    return f"{len(parts)} partition(s) " + ", ".join(f"{p.name} ({human_bytes(p.bytes)})" for p in parts)


def emit_error(command: str | None, message: str, kind: str, exit_code: int) -> None:
    """With --json a failure is one JSON object on stdout, beside the line on stderr."""
    click.echo(json.dumps(
        {"action": command, "ok": False, "exit_code": exit_code, "error": message, "kind": kind}, indent=2,
    ))
