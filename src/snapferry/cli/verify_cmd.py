"""`snapferry verify`: check a backup where it is stored, without restoring it."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import EXIT_BAD_BACKUP
from ..findings import VerifyResult
from ..progress import human_bytes
from ._common import run_options, settings_from


@click.command()
@click.option("--src", required=True, help="The backup to check, e.g. s3://bucket/vm/daily.")
@click.option("--structure-only", is_flag=True,
              help="Only the listing and the manifest: no provider checksums, no data read.")
@click.option("--read-data", is_flag=True, help="Read every byte and check it against the manifest.")
@click.option("--read-data-subset", metavar="P%|N/M",
              help="Read only a deterministic slice of the parts: N/M, or P% (a slice that changes daily, "
                   "so a daily job reads every part in 100/P days). Implies --read-data.")
@click.option("--partitions", default=None, metavar="YYYY_MM[,...]",
              help="Check only these month partitions and the files outside every partition.")
@click.option("--since", default=None, metavar="DURATION|DATE",
              help="Check only the month partitions overlapping [now-DURATION or DATE, now].")
@run_options(writes=True)
def verify(**kw: Any) -> None:
    """Check a backup without restoring it: structure, the store's checksums, optionally the data.

    Exits 0 when clean, 3 when problems were found (all listed), 1 when it could not check."""
    from ..actions.verify import Subset, Verify, advice
    from ..partitions import PartitionFilter

    as_json = kw.pop("as_json")
    subset = kw["read_data_subset"]
    result = Verify(
        kw["src"], settings_from(kw), structure_only=kw["structure_only"], read_data=kw["read_data"],
        subset=Subset.parse(subset) if subset else None, only=PartitionFilter(kw["partitions"], kw["since"]),
    ).run()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for p in result.problems:
            click.echo(f"problem: {p}", err=True)
        click.echo(summary(result), err=True)
    if result.problems:
        # The result (with every problem) is the output, also with --json: one error line on
        # stderr and the exit code, not a second JSON object as for a failure to check.
        first = result.problems[0]
        click.echo(
            f"snapferry: error: {len(result.problems)} problem(s) found in {result.src}, first: {first}; "
            f"{advice(result.problems)}", err=True,
        )
        raise click.exceptions.Exit(EXIT_BAD_BACKUP)


def made_at(r: VerifyResult) -> str:
    """The creation time from the metadata, said to be authenticated when it is (encrypted backups)."""
    if r.created_at is None:
        return ""
    return f", made {r.created_at}" + (", authenticated" if r.metadata_authenticated else "")


def summary(r: VerifyResult) -> str:
    checks = ["structure"]
    if r.parts_provider_checked:
        checks.append(f"{r.parts_provider_checked} provider checksums")
    if r.parts_read or r.subset:
        checks.append(f"{r.parts_read} parts read ({human_bytes(r.bytes_read)}"
                      + (f", slice {r.subset})" if r.subset else ")"))
    state = "clean" if not r.problems else f"{len(r.problems)} problem(s)"
    return (
        f"verified {r.src} ({r.made_by}, {human_bytes(r.backup_bytes)}, {r.files} files, {r.parts} parts, "
        f"{r.parts_with_checksums} with checksums{made_at(r)}) in {r.seconds:.2f}s: {', '.join(checks)}: {state}"
    )
