"""`snapferry restore`: a backup into a directory."""

from __future__ import annotations

from typing import Any

import click

from ..settings import RunSettings
from ..tuning import Tuning
from ._common import emit, run_options, run_pushed, settings_from

# The CLI's floor for --chunk-size (Tuning itself takes any size, for tests of tiny data): below
# it a ranged request costs more in round trips than it moves (0 = automatic).
MIN_CHUNK_SIZE = 1024 * 1024


def _chunk_size(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value != 0 and value < MIN_CHUNK_SIZE:
        raise click.BadParameter(
            f"--chunk-size {value} is too small; use at least {MIN_CHUNK_SIZE} (1 MiB), or 0 for automatic"
        )
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
@run_options(writes=False)
def restore(**kw: Any) -> None:
    """Restore a backup into a directory (incremental: only missing parts are fetched)."""
    from ..actions.restore import Restore
    from ..partitions import PartitionFilter

    def make(settings: RunSettings) -> Restore:
        tuning = Tuning(
            concurrency=settings.concurrency, max_inflight_bytes=kw["max_inflight_bytes"],
            chunk_size=kw["chunk_size"], direct_min=Tuning().direct_min if kw["direct_io"] else 0,
        )
        return Restore(
            kw["src"], kw["dst"], settings, tuning=tuning, preallocate=not kw["skip_file_preallocation"],
            skip_backup_complete_check=kw["skip_backup_complete_check"], verify=kw["verify"], force=kw["force"],
            checksums=kw["checksums"], only=PartitionFilter(kw["partitions"], kw["since"]),
        )

    if kw["dry_run"]:
        as_json = kw.pop("as_json")
        emit(make(settings_from(kw)).dry_run(), as_json)
    else:
        run_pushed(kw, "restore", make)
