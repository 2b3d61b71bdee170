"""`snapferry partitions-swap`: the second step of a partial restore (docs/partial-restore.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import api


@click.command("partitions-swap")
@click.option("--stage", required=True,
              help="The staging directory a `restore --partitions` filled, on the database's filesystem.")
@click.option("--dst", required=True, help="The database directory (-storageDataPath); the database must be stopped.")
@click.option("--partitions", default=None, metavar="YYYY_MM[,...]",
              help="Move only these staged partitions (default: every one the stage holds).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def partitions_swap(**kw: Any) -> None:
    """Move restored month partitions from --stage into the stopped database at --dst (renames only)."""
    result = api.partitions_swap(kw["stage"], kw["dst"], partitions=kw["partitions"])
    if kw["as_json"]:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"moved {len(result.partitions)} partition(s) ({', '.join(result.partitions)}) from {result.stage} into "
        f"{result.dst} ({result.moved_dirs} directories renamed"
        f"{', cache/ removed' if result.cache_removed else ''}); start the database",
        err=True,
    )
