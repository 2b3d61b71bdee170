"""`snapferry backup`: a snapshot to a remote."""

from __future__ import annotations

from typing import Any

import click

from ..parts import MAX_PART_SIZE
from ._common import replace_encrypted_option, run_options, run_pushed
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
@replace_encrypted_option
@run_options(writes=True)
def backup(**kw: Any) -> None:
    """Back up a snapshot to a remote (incremental when dst already holds a backup)."""
    from ..actions.backup import Backup
    from ..actions.source import source_of

    tls = tls_from(kw)
    run_pushed(kw, "backup", lambda settings: Backup(
        kw["dst"], source_of(kw["src"], kw["storage_data_path"], kw["snapshot_name"], kw["snapshot_create_url"],
                             kw["snapshot_delete_url"], tls),
        settings, origin=kw["origin"], max_part_size=kw["max_part_size"], force=kw["force"], encrypt=kw["encrypt"],
        replace_encrypted=kw["replace_encrypted"],
    ))
