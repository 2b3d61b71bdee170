"""`snapferry backup`: a snapshot to a remote."""

from __future__ import annotations

from typing import Any

import click

from .. import api
from ..parts import MAX_PART_SIZE
from ..retry import RetryPolicy
from ._common import common_options, emit, key_file_option, metrics_pushed, options_from, write_remote_options
from ._snapshot_tls import snapshot_tls_options, tls_from


@click.command()
@click.option("--src", help="Snapshot directory to back up.")
@click.option("--storage-data-path", help="VictoriaMetrics -storageDataPath (with a snapshot option).")
@click.option("--snapshot-name", help="An existing snapshot in <storage-data-path>/snapshots.")
@click.option("--snapshot-create-url", help="e.g. http://127.0.0.1:8428/snapshot/create.")
@click.option("--snapshot-delete-url", help="Defaults to the create URL with /delete.")
@snapshot_tls_options
@click.option("--dst", required=True, help="Where the backup goes, e.g. fs:///var/backups/vm/daily.")
@click.option("--origin", help="An older backup on the same backend to copy unchanged parts from.")
@click.option("--force", is_flag=True,
              help="Back up a --src that is a stopped VictoriaMetrics data directory (never a running one).")
@click.option("--max-part-size", type=click.IntRange(1), default=MAX_PART_SIZE, hidden=True)
@click.option("--encrypt", is_flag=True,
              help="Encrypt the backup (needs --encryption-key-file; vmrestore cannot read it).")
@key_file_option
@click.option("--replace-encrypted", is_flag=True,
              help="Replace an encrypted backup at --dst with this unencrypted one (refused without it).")
@common_options
@write_remote_options
def backup(**kw: Any) -> None:
    """Back up a snapshot to a remote (incremental when dst already holds a backup)."""
    as_json = kw.pop("as_json")
    opts = options_from(kw, kw["concurrency"])
    tls = tls_from(kw)
    with metrics_pushed(kw.pop("push_metrics_url"), "backup") as run:
        result = api.backup(
            kw["dst"], kw["src"], storage_data_path=kw["storage_data_path"], snapshot_name=kw["snapshot_name"],
            snapshot_create_url=kw["snapshot_create_url"], snapshot_delete_url=kw["snapshot_delete_url"],
            snapshot_tls=tls,
            origin=kw["origin"], concurrency=kw["concurrency"], max_bytes_per_second=kw["max_bytes_per_second"],
            remote_options=opts, retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"],
            max_part_size=kw["max_part_size"], force=kw["force"], encrypt=kw["encrypt"],
            encryption_key_file=kw["encryption_key_file"], replace_encrypted=kw["replace_encrypted"],
        )
        run.result = result
    emit(result, as_json)
