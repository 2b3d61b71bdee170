"""`snapferry manager`: the backup scheduler service, and the commands beside it.

`snapferry manager [options]` runs the service; `manager backup list|lock|unlock`
and `manager restore create|get|delete` read and write the remote and the storage
data path directly, with no server running, or, with `--api-url`, ask a running
manager's API (no data volume, no bucket credentials; basic auth and a CA file for
https). See docs/http-api.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from .. import api
from ..errors import UsageError
from ..httpsec import Security
from ..httpserve import Limits
from ..manager import retention
from ..manager.catalog import Catalog
from ..manager.layout import parse_backup_name
from ..manager.marks import MarkSelection, RestoreMarks
from ..manager.restore import restore_marked
from ..manager.schedule import parse_interval, zone
from ..manager.service import Manager, ManagerConfig
from ..remotes import RemoteOptions
from ..retry import RetryPolicy
from ._common import ENV, emit, key_file_option, options_from, remote_options, settings_from
from ._http_options import client_of, client_options, security_of, server_options
from ._snapshot_tls import snapshot_tls_options, tls_from

log = logging.getLogger("snapferry")

DEFAULT_HTTP_LISTEN_ADDR = "127.0.0.1:8300"


def _dst_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--dst", envvar=ENV + "DST",
                        help="The root of the backups, e.g. s3://bucket/vm-node-1 (holds latest/, daily/...).")(f)


def _data_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--storage-data-path", envvar=ENV + "STORAGE_DATA_PATH",
                        help="VictoriaMetrics -storageDataPath.")(f)


def _concurrency_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--max-bytes-per-second", type=click.IntRange(0), default=0,
                     envvar=ENV + "MAX_BYTES_PER_SECOND", help="Bandwidth limit; 0 means none.")(f)
    return click.option("--concurrency", type=click.IntRange(1, 256), default=api.DEFAULT_CONCURRENCY,
                        show_default=True, envvar=ENV + "CONCURRENCY", help="Parallel transfers.")(f)


def _keep(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(f"--keep-last-{kind}", type=click.IntRange(-1), default=retention.KEEP_ALL,
                        show_default=True, envvar=ENV + f"KEEP_LAST_{kind.upper()}",
                        help=f"Keep the newest N {kind} backups; -1 keeps all, 0 none.")


def _validation_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--disable-source-backup-validation", is_flag=True,
                        envvar=ENV + "DISABLE_SOURCE_BACKUP_VALIDATION",
                        help="Create restore marks without checking that the backup exists and is complete.")(f)


def _tag_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--backup-type-tag-name", default="", envvar=ENV + "BACKUP_TYPE_TAG_NAME",
                        help="Tag every object written into a backup with NAME=<type> (latest, hourly, daily, "
                             "weekly, monthly), for lifecycle rules by type: S3 object tags, Azure blob index tags, "
                             "metadata on gs://.")(f)


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise UsageError(f"{flag} is required here (or set {ENV}{flag[2:].upper().replace('-', '_')})")
    return value


def start_http_api(manager: Manager, listen_addr: str, security: Security, limits: Limits) -> Any:
    """The hook for the HTTP API: snapferry.manager.http.start_server serves /api/v1/...,
    /health and /metrics on a thread and returns the server (its drain() and stop())."""
    http = importlib.import_module("snapferry.manager.http")
    return http.start_server(manager, listen_addr, security, limits)


def make_events() -> Any:
    """The hook for metrics: snapferry.manager.metrics.Metrics(), or None (no-op events)."""
    try:
        metrics = importlib.import_module("snapferry.manager.metrics")
    except ModuleNotFoundError:
        return None
    return metrics.Metrics()


@click.group(invoke_without_command=True)
@_data_option
@click.option("--snapshot-create-url", envvar=ENV + "SNAPSHOT_CREATE_URL",
              help="e.g. http://127.0.0.1:8428/snapshot/create.")
@click.option("--snapshot-delete-url", envvar=ENV + "SNAPSHOT_DELETE_URL",
              help="Defaults to the create URL with /delete.")
@snapshot_tls_options
@_dst_option
@_concurrency_options
@click.option("--http-listen-addr", default=DEFAULT_HTTP_LISTEN_ADDR, show_default=True,
              envvar=ENV + "HTTP_LISTEN_ADDR", help="Where the API and /metrics listen.")
@click.option("--backup-interval", default="0", envvar=ENV + "BACKUP_INTERVAL",
              help="Seconds or a duration like 1h30m between runs; 0: hourly, or daily at 00:00 without hourly.")
@click.option("--backup-schedule-timezone", default="UTC", show_default=True,
              envvar=ENV + "BACKUP_SCHEDULE_TIMEZONE", help="IANA zone for the schedule and backup names.")
@click.option("--disable-hourly", is_flag=True, envvar=ENV + "DISABLE_HOURLY", help="No hourly backups.")
@click.option("--disable-daily", is_flag=True, envvar=ENV + "DISABLE_DAILY", help="No daily backups.")
@click.option("--disable-weekly", is_flag=True, envvar=ENV + "DISABLE_WEEKLY", help="No weekly backups.")
@click.option("--disable-monthly", is_flag=True, envvar=ENV + "DISABLE_MONTHLY", help="No monthly backups.")
@click.option("--run-on-start", is_flag=True, envvar=ENV + "RUN_ON_START", help="Run a backup at start.")
@click.option("--disable-scheduled-backups", is_flag=True, envvar=ENV + "DISABLE_SCHEDULED_BACKUPS",
              help="Only back up when asked through the API.")
@_keep("hourly")
@_keep("daily")
@_keep("weekly")
@_keep("monthly")
@server_options
@click.option("--encrypt", is_flag=True, envvar=ENV + "ENCRYPT",
              help="Encrypt every backup (needs --encryption-key-file; vmrestore cannot read them).")
@key_file_option
@_validation_option
@_tag_option
@remote_options
@click.pass_context
def manager(ctx: click.Context, /, **kw: Any) -> None:
    """Scheduled backups in vmbackupmanager's layout, with retention and restore marks."""
    if ctx.invoked_subcommand is not None:
        return
    config = config_from(kw)
    security = security_of(kw)  # every certificate and secret file is read here: a mistake stops the start
    delay = parse_interval(kw["http_shutdown_delay"])
    delay_s = delay.total_seconds() if delay else 0.0
    mgr = Manager(config, events=make_events())
    stop = threading.Event()
    draining = threading.Event()
    servers: list[Any] = []  # the API server, once start_http_api returns it
    early: list[int] = []  # a signal to drain on that came while the API was starting

    def drain(signum: int) -> None:
        servers[0].drain()
        log.info("%s: /health answers 503 for %gs, then the manager stops", signal.Signals(signum).name, delay_s)
        timer = threading.Timer(delay_s, stop.set)
        timer.daemon = True
        timer.start()

    def on_signal(signum: int, frame: object) -> None:
        if delay_s > 0 and not draining.is_set():  # a second signal stops at once
            draining.set()
            if servers:
                drain(signum)
            else:  # the API may answer already, before start_http_api returns: it drains once it does
                early.append(signum)
            return
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    # the handlers go in before the API answers: a SIGTERM right after the first /health (a
    # probe, an orchestrator) is a clean stop, not the default death mid-start
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        servers.append(start_http_api(mgr, config.http_listen_addr, security,
                                      Limits(max_connections=kw["http_max_connections"], shutdown_delay=delay_s)))
        if early:
            drain(early[0])
        if not stop.is_set():
            mgr.serve(stop)
    finally:
        for server in servers:
            server.stop()
        mgr.close()
        for s, h in previous.items():
            signal.signal(s, h)


def config_from(kw: dict[str, Any]) -> ManagerConfig:
    """A ManagerConfig from the service's options (validated: one line per mistake)."""
    interval = parse_interval(kw["backup_interval"])
    zone(kw["backup_schedule_timezone"])
    opts = dataclasses.replace(options_from(kw, kw["concurrency"]), backup_type_tag_name=kw["backup_type_tag_name"])
    return ManagerConfig(
        storage_data_path=_need(kw["storage_data_path"], "--storage-data-path"),
        snapshot_create_url=_need(kw["snapshot_create_url"], "--snapshot-create-url"),
        snapshot_delete_url=kw["snapshot_delete_url"],
        snapshot_tls=tls_from(kw),
        dst=_need(kw["dst"], "--dst"),
        concurrency=kw["concurrency"],
        max_bytes_per_second=kw["max_bytes_per_second"],
        http_listen_addr=kw["http_listen_addr"],
        backup_interval=interval,
        backup_schedule_timezone=kw["backup_schedule_timezone"],
        disable_hourly=kw["disable_hourly"],
        disable_daily=kw["disable_daily"],
        disable_weekly=kw["disable_weekly"],
        disable_monthly=kw["disable_monthly"],
        run_on_start=kw["run_on_start"],
        disable_scheduled_backups=kw["disable_scheduled_backups"],
        keep_last_hourly=kw["keep_last_hourly"],
        keep_last_daily=kw["keep_last_daily"],
        keep_last_weekly=kw["keep_last_weekly"],
        keep_last_monthly=kw["keep_last_monthly"],
        remote_options=opts,
        retries=kw["retries"],
        encryption_key_file=_encryption(kw),
        disable_source_backup_validation=kw["disable_source_backup_validation"],
    )


def _encryption(kw: dict[str, Any]) -> str | None:
    """The key file when --encrypt is on; the two go together (exit 2 otherwise)."""
    if kw["encrypt"] and not kw["encryption_key_file"]:
        raise click.UsageError("--encrypt needs --encryption-key-file FILE (make one with `snapferry keygen FILE`)")
    if kw["encryption_key_file"] and not kw["encrypt"]:
        raise click.UsageError("--encryption-key-file is given without --encrypt; add --encrypt to encrypt the backups")
    key_file: str | None = kw["encryption_key_file"]
    return key_file


def _catalog(kw: dict[str, Any]) -> Catalog:
    opts: RemoteOptions = dataclasses.replace(options_from(kw, api.DEFAULT_CONCURRENCY),
                                              backup_type_tag_name=kw.pop("backup_type_tag_name", ""))
    return Catalog(_need(kw["dst"], "--dst"), opts, retry=RetryPolicy(attempts=kw["retries"]))


@manager.group()
def backup() -> None:
    """List, lock and unlock the backups under --dst (reads the remote directly)."""


@backup.command("list")
@_dst_option
@click.option("--json", "as_json", is_flag=True, help="Print vmbackupmanager's JSON list.")
@client_options
@remote_options
def backup_list(as_json: bool, **kw: Any) -> None:
    """List the backups: name, size, created_at, locked, state."""
    client = client_of(kw)
    if client is not None:
        rows: list[dict[str, Any]] = client.call("GET", "/api/v1/backups")
    else:
        with _catalog(kw) as catalog:
            rows = [i.to_dict() for i in catalog.list()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for d in rows:
        click.echo(f"{d['name']:<24} {d['size']:>10} {d['created_at']:<22} {d['state']:<10}"
                   f"{' locked' if d['locked'] else ''}")


def _lock_command(locked: bool) -> click.Command:
    verb = "lock" if locked else "unlock"

    @click.command(verb)
    @click.argument("name")
    @_dst_option
    @click.option("--json", "as_json", is_flag=True, help="Print the backup as JSON.")
    @client_options
    @_tag_option  # the lock file is an object of the backup: tagged as the manager would
    @remote_options
    def cmd(name: str, as_json: bool, **kw: Any) -> None:
        client = client_of(kw)
        backup_name = str(parse_backup_name(name))
        if client is not None:
            info: dict[str, Any] = client.call("PUT", f"/api/v1/backups/{backup_name}", {"locked": locked})
        else:
            with _catalog(kw) as catalog:
                info = catalog.set_locked(parse_backup_name(name), locked).to_dict()
        click.echo(json.dumps(info) if as_json else f"{verb}ed {info['name']}")

    cmd.help = ("Protect a backup from retention (backup_locked.ignore)." if locked
                else "Let retention delete a backup again.")
    return cmd


backup.add_command(_lock_command(True))
backup.add_command(_lock_command(False))


@manager.group("restore", invoke_without_command=True)
@_data_option
@_dst_option
@_concurrency_options
@click.option("--json", "as_json", is_flag=True, help="Print the restore summary as JSON.")
@click.option("--progress", type=click.Choice(["auto", "bar", "log", "off"]), default="auto")
@key_file_option
@remote_options
@click.pass_context
def restore(ctx: click.Context, /, as_json: bool, progress: str, **kw: Any) -> None:
    """Restore the backup named by the restore mark (exit 0 at once without one).

    Run it while the database is stopped, e.g. as an init container."""
    if ctx.invoked_subcommand is not None:
        return
    data = _need(kw["storage_data_path"], "--storage-data-path")
    key_file = kw.pop("encryption_key_file")  # read by restore_marked only when there is a mark
    result = restore_marked(data, kw["dst"], settings_from({**kw, "progress": progress}), key_file)
    if result is None:
        if as_json:
            click.echo(json.dumps({"action": "restore", "restored": None}))
        else:
            click.echo(f"no restore mark in {data}: nothing to restore", err=True)
        return
    emit(result, as_json)


@restore.command("create")
@click.argument("name")
@_data_option
@_dst_option
@_validation_option
@client_options
@click.option("--partitions", default=None, metavar="YYYY_MM[,...]",
              help="Restore only these month partitions (docs/partial-restore.md).")
@click.option("--since", default=None, metavar="DURATION|DATE",
              help="Restore only the month partitions overlapping [now-DURATION or DATE, now].")
@remote_options
def restore_create(name: str, disable_source_backup_validation: bool, **kw: Any) -> None:
    """Mark NAME (daily/2026-11-27 under --dst, or a full backup URL) for restore on the next
    start; the mark holds the full URL, so `manager restore` needs no --dst."""
    client = client_of(kw)
    if client is not None:
        if disable_source_backup_validation:
            raise UsageError("--disable-source-backup-validation applies to a mark written into "
                             "--storage-data-path; the API always validates: drop one of it and --api-url")
        body = {"backup": name, **{k: kw[k] for k in ("partitions", "since") if kw[k] is not None}}
        client.call("POST", "/api/v1/restore", body)
        click.echo(f"marked {name} for restore through {client.url}", err=True)
        return
    data = _need(kw["storage_data_path"], "--storage-data-path")
    validate = not disable_source_backup_validation
    sel = MarkSelection(kw.pop("partitions"), kw.pop("since"))
    if kw["dst"]:
        with _catalog(kw) as catalog:
            url = RestoreMarks(data, catalog).create(name, validate, sel)
    else:
        url = RestoreMarks(data, None, options_from(kw, api.DEFAULT_CONCURRENCY)).create(name, validate, sel)
    click.echo(f"marked {url} for restore into {data}", err=True)


def _mark_command(name: str, method: str, *, prints: bool) -> Callable[[Callable[[RestoreMarks], Any]], click.Command]:
    """`manager restore NAME` for a command of the mark alone: `act(marks)` on the mark under
    --storage-data-path, or, with --api-url, METHOD /api/v1/restore of the running manager in its
    place; with `prints`, what either returns is printed as JSON."""

    def command(act: Callable[[RestoreMarks], Any]) -> click.Command:
        @restore.command(name, help=act.__doc__)
        @_data_option
        @client_options
        def cmd(storage_data_path: str | None, **kw: Any) -> None:
            client = client_of(kw)
            if client is not None:
                answer = client.call(method, "/api/v1/restore")
            else:
                answer = act(RestoreMarks(_need(storage_data_path, "--storage-data-path"), None))
            if prints:
                click.echo(json.dumps(answer))

        return cmd

    return command


@_mark_command("get", "GET", prints=True)
def restore_get(marks: RestoreMarks) -> dict[str, Any]:
    """Print the restore mark as {"backup": NAME}, or {} without one."""
    value = marks.get()
    if value is None:
        return {}
    sel = marks.selection()
    extra = {k: v for k, v in (("partitions", sel.partitions), ("since", sel.since)) if v is not None}
    return {"backup": value, **extra}


@_mark_command("delete", "DELETE", prints=False)
def restore_delete(marks: RestoreMarks) -> None:
    """Delete the restore mark (nothing happens without one)."""
    marks.delete()
