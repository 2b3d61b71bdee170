"""`snapferry copy`: a backup from one remote to another."""

from __future__ import annotations

from typing import Any

import click

from ._common import replace_encrypted_option, run_options, run_pushed


@click.command()
@click.option("--src", required=True, help="The backup to copy.")
@click.option("--dst", required=True, help="Where the copy goes (extra parts there are deleted).")
@click.option("--skip-backup-complete-check", is_flag=True, help="Copy even without the completion marker.")
@replace_encrypted_option
@run_options(writes=True)
def copy(**kw: Any) -> None:
    """Copy a backup between remotes (server-side on one backend, streamed across backends)."""
    from ..actions.copy import Copy

    run_pushed(kw, "copy", lambda settings: Copy(
        kw["src"], kw["dst"], settings, skip_backup_complete_check=kw["skip_backup_complete_check"],
        replace_encrypted=kw["replace_encrypted"]))
