"""`snapferry restore`: a backup into a directory."""

from __future__ import annotations

from typing import Any

import click

from .. import api
from ..errors import UsageError
from ..retry import RetryPolicy
from ..tuning import Tuning
from ._common import common_options, emit, key_file_option, metrics_pushed, options_from, read_remote_options


def _chunk_size(ctx: click.Context, param: click.Parameter, value: int) -> int:
    try:
        api.check_chunk_size(value)
    except UsageError as e:
        raise click.BadParameter(str(e)) from e
    return value


@click.command()
@click.option("--src", required=True, help="The backup, e.g. fs:///var/backups/vm/daily.")
@click.option("--dst", required=True, help="The directory to restore into (VictoriaMetrics -storageDataPath).")
@click.option("--skip-backup-complete-check", is_flag=True, help="Restore even without the completion marker.")
@click.option("--skip-file-preallocation", is_flag=True,
              help="Write files in place (no .tmp, no fallocate); slower, resumes at part granularity.")
@click.option("--verify", is_flag=True,
              help="Also re-read every restored file and check it against the backup's CRC32s before its rename.")
@click.option("--checksums/--no-checksums", default=True, show_default=True,
              help="Check downloaded bytes against the backup's CRC32 manifest in memory, before they are written.")
@click.option("--max-inflight-bytes", type=click.IntRange(8 * 1024 * 1024), default=Tuning().max_inflight_bytes,
              show_default=True, help="Memory for data in flight, shared by all workers.")
@click.option("--chunk-size", type=click.IntRange(0), default=Tuning().chunk_size, show_default=True,
              callback=_chunk_size,
              help="Bytes per ranged request, at least 1 MiB; 0 splits each big part evenly over the workers "
                   f"(at least {Tuning().min_chunk_size // (1024 * 1024)} MiB).")
@click.option("--direct-io/--no-direct-io", default=Tuning().direct_min > 0, show_default=True,
              help="Write downloaded files with O_DIRECT, past the page cache (falls back where refused).")
@click.option("--force", is_flag=True,
              help="Restore into a directory that does not look like a VictoriaMetrics data directory, "
                   "deleting its files that the backup lacks.")
@click.option("--partitions", default=None, metavar="YYYY_MM[,...]",
              help="Restore only these month partitions (and the files outside every partition); other "
                   "partitions in --dst are removed. Needs a backup with per-partition indexes (1.133+).")
@click.option("--since", default=None, metavar="DURATION|DATE",
              help="Restore only the month partitions overlapping [now-DURATION or DATE, now] (e.g. 45d, "
                   "2026-11-01); with --partitions, the intersection.")
@click.option("--dry-run", is_flag=True,
              help="Run every check and print the plan (deletions, downloads, space); change nothing.")
@key_file_option
@common_options
@read_remote_options
def restore(**kw: Any) -> None:
    """Restore a backup into a directory (incremental: only missing parts are fetched)."""
    as_json = kw.pop("as_json")
    opts = options_from(kw, kw["concurrency"])
    if kw["dry_run"]:
        emit(api.restore_dry_run(
            kw["src"], kw["dst"], skip_backup_complete_check=kw["skip_backup_complete_check"],
            skip_file_preallocation=kw["skip_file_preallocation"], remote_options=opts, verify=kw["verify"],
            force=kw["force"], partitions=kw["partitions"], since=kw["since"],
            encryption_key_file=kw["encryption_key_file"],
        ), as_json)
        return
    tuning = Tuning(
        concurrency=kw["concurrency"], max_inflight_bytes=kw["max_inflight_bytes"], chunk_size=kw["chunk_size"],
        direct_min=Tuning().direct_min if kw["direct_io"] else 0,
    )
    with metrics_pushed(kw.pop("push_metrics_url"), "restore") as run:
        result = api.restore(
            kw["src"], kw["dst"], skip_backup_complete_check=kw["skip_backup_complete_check"],
            skip_file_preallocation=kw["skip_file_preallocation"], concurrency=kw["concurrency"],
            max_bytes_per_second=kw["max_bytes_per_second"], remote_options=opts,
            retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"], tuning=tuning,
            verify=kw["verify"], force=kw["force"], checksums=kw["checksums"],
            partitions=kw["partitions"], since=kw["since"], encryption_key_file=kw["encryption_key_file"],
        )
        run.result = result
    emit(result, as_json)

