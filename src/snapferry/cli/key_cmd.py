"""`snapferry keygen` and `snapferry rekey`: the keys of encrypted backups (docs/encryption.md)."""

from __future__ import annotations

from typing import Any

import click

from .. import api
from ._common import key_file_option, options_from, read_remote_options


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
def keygen(file: str) -> None:
    """Write a new random encryption key to FILE (mode 0600; an existing FILE is refused)."""
    fingerprint = api.keygen(file)
    click.echo(f"wrote the key {fingerprint} to {file}; keep a copy: without it no backup made with it can be read",
               err=True)


@click.command()
@click.option("--src", required=True, help="The encrypted backup whose data key is wrapped again.")
@key_file_option
@click.option("--new-encryption-key-file", required=True, type=click.Path(dir_okay=False),
              help="The key file that wraps the backup's data key from now on.")
@read_remote_options
def rekey(**kw: Any) -> None:
    """Wrap an encrypted backup's data key with a new key; no part is rewritten."""
    if not kw["encryption_key_file"]:
        raise click.UsageError("rekey needs the current key: --encryption-key-file FILE")
    opts = options_from(kw, api.DEFAULT_CONCURRENCY)
    old, new = api.rekey(kw["src"], kw["encryption_key_file"], kw["new_encryption_key_file"], remote_options=opts)
    click.echo(f"{kw['src']}: the data key was wrapped by {old}, now by {new}", err=True)
