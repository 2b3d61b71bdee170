"""`snapferry vmbackup|vmrestore|vmbackupmanager ...` and the `snapferry-vm*` scripts.

The arguments are the original tool's Go-style flags, untouched by click (they are
parsed by snapferry.dropin with Go's rules); the translated command then runs through
this same CLI's `main`, so a drop-in run is a native run.
"""

from __future__ import annotations

import sys

import click

from ..dropin import Tool, run


def _command(tool: Tool) -> click.Command:
    @click.command(
        name=tool.value,
        add_help_option=False,  # -h/-help belong to the Go flags
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        from .main import main  # main registers this module: import at call time

        raise click.exceptions.Exit(run(tool, list(args), main, accepted))

    command.help = (
        f"Run a {tool.value} command line unchanged (Go-style flags, e.g. -dst=s3://b/p); "
        f"`snapferry {tool.value} -help` lists its flags."
    )
    return command


# cli/main.py registers these by name (and loads this module only when one runs)
vmbackup = _command(Tool.VMBACKUP)
vmrestore = _command(Tool.VMRESTORE)
vmbackupmanager = _command(Tool.VMBACKUPMANAGER)


def accepted(path: tuple[str, ...]) -> set[str]:
    """The options of `snapferry <path...>`, read from the click commands themselves."""
    from .main import cli

    cmd: click.Command = cli
    for word in path:
        assert isinstance(cmd, click.Group), path
        sub = cmd.get_command(click.Context(cmd), word)  # a lazy group loads the command here
        assert sub is not None, path
        cmd = sub
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def _entry(tool: Tool) -> None:
    from .main import _big_buffers_unmapped_when_freed, main

    _big_buffers_unmapped_when_freed()
    # The script's own argv goes to the Go parser as it is (click would drop a `--`).
    sys.exit(run(tool, sys.argv[1:], main, accepted))


def vmbackup_entry() -> None:
    _entry(Tool.VMBACKUP)


def vmrestore_entry() -> None:
    _entry(Tool.VMRESTORE)


def vmbackupmanager_entry() -> None:
    _entry(Tool.VMBACKUPMANAGER)
