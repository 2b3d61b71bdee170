"""`snapferry info`: what a backup location holds."""

from __future__ import annotations

import json
from typing import Any

import click

from ..findings import BackupInfo
from ..progress import human_bytes
from ._common import key_file_option, remote_options, settings_from


@click.command()
@click.option("--src", required=True, help="A backup, or a vmbackupmanager destination (latest/, daily/...).")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON on stdout.")
@key_file_option
@remote_options
def info(**kw: Any) -> None:
    """Size, files, parts, when and by what a backup was made, complete or not, checksummed or not."""
    from ..actions.info import Info

    as_json = kw.pop("as_json")
    result = Info(kw["src"], settings_from(kw)).run()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    if result.backup is None and not result.backups:
        click.echo(f"{result.src} holds no backup", err=True)
    if result.backup is not None:
        click.echo(f"{result.src}: {line(result.backup)}{partitions(result.backup)}")
    for b in result.backups:
        click.echo(f"{b.name}: {line(b)}{partitions(b)}")


def partitions(b: BackupInfo) -> str:
    """The month partitions with their sizes (what `restore --partitions` can name), on the backup's line."""
    if not b.partitions:
        return ""
    months = ", ".join(f"{p.name} {human_bytes(p.bytes)}" for p in b.partitions)
    return f"; {len(b.partitions)} month partition(s) ({b.layout} index): {months}"


def line(b: BackupInfo) -> str:
    made = (b.created_at or "unknown time") + (" (authenticated)" if b.metadata_authenticated else "")
    return (
        f"{human_bytes(b.backup_bytes)} in {b.files} files ({b.parts} parts), made {made} by {b.created_by}, "
        f"{'complete' if b.complete else 'INCOMPLETE'}, "
        + (f"checksummed (manifest v{b.manifest_version})" if b.checksummed else "no checksums")
    )
