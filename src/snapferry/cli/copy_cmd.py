"""`snapferry copy`: a backup from one remote to another."""

from __future__ import annotations

from typing import Any

import click

from .. import api
from ..retry import RetryPolicy
from ._common import common_options, emit, key_file_option, metrics_pushed, options_from, write_remote_options


@click.command()
@click.option("--src", required=True, help="The backup to copy.")
@click.option("--dst", required=True, help="Where the copy goes (extra parts there are deleted).")
@click.option("--skip-backup-complete-check", is_flag=True, help="Copy even without the completion marker.")
@key_file_option
@click.option("--replace-encrypted", is_flag=True,
              help="Replace an encrypted backup at --dst with this unencrypted one (refused without it).")
@common_options
@write_remote_options
def copy(**kw: Any) -> None:
    """Copy a backup between remotes (server-side on one backend, streamed across backends)."""
    as_json = kw.pop("as_json")
    opts = options_from(kw, kw["concurrency"])
    with metrics_pushed(kw.pop("push_metrics_url"), "copy") as run:
        result = api.copy(
            kw["src"], kw["dst"], concurrency=kw["concurrency"],
            skip_backup_complete_check=kw["skip_backup_complete_check"],
            max_bytes_per_second=kw["max_bytes_per_second"], remote_options=opts,
            retry=RetryPolicy(attempts=kw["retries"]), progress=kw["progress"],
            encryption_key_file=kw["encryption_key_file"], replace_encrypted=kw["replace_encrypted"],
        )
        run.result = result
    emit(result, as_json)
