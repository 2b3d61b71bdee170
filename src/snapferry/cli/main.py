"""The `snapferry` command line: a thin layer over snapferry.api, one module per command."""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import click

from ..errors import EXIT_FAILURE, EXIT_USAGE, Interrupted, NoSpaceError, SnapferryError
from ..libc import LIBC
from ._common import ENV, LOG_LEVELS, emit_error, setup_logging

_M_MMAP_THRESHOLD = -3  # mallopt(3)

log = logging.getLogger("snapferry")

# The commands: name -> the module of this package that defines it, as the function named
# like the command (`partitions-swap` -> partitions_swap). A command's module is imported
# only when that command runs (or for the top-level --help), so a restore from fs:// never
# loads the manager's web stack, the push-metrics client or a cloud SDK.
COMMANDS: Mapping[str, str] = {
    "backup": "backup_cmd", "restore": "restore_cmd", "partitions-swap": "swap_cmd", "copy": "copy_cmd",
    "manager": "manager_cmd", "verify": "verify_cmd", "info": "info_cmd", "keygen": "key_cmd", "rekey": "key_cmd",
    "vmbackup": "dropin_cmd", "vmrestore": "dropin_cmd", "vmbackupmanager": "dropin_cmd",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module the first time the command is looked up."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attr = self.lazy[cmd_name], cmd_name.replace("-", "_")
            command = getattr(importlib.import_module(f".{module}", __package__), attr)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{module}.{attr} is not the click command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", type=LOG_LEVELS, default="info", envvar=ENV + "LOG_LEVEL")
@click.version_option(package_name="snapferry")
def cli(log_level: str) -> None:
    """Back up VictoriaMetrics snapshots to fs://, s3://, gs:// or azblob:// and restore them fast."""
    setup_logging(log_level)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum, "")


def main(argv: list[str] | None = None) -> int:
    return _run(list(sys.argv[1:] if argv is None else argv))


def _run(args: list[str]) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        # Without standalone mode click returns the code of a command's Exit (verify: 3 when it
        # found problems, its JSON result already printed) instead of raising it.
        rv = cli.main(args=args, prog_name="snapferry", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Abort:
        return _interrupted(signal.SIGINT)
    except click.ClickException as e:
        e.show()
        code = EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
        return _json_error(args, e.format_message(), e, code)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except Interrupted as e:
        return _interrupted(e.signum)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except SnapferryError as e:
        return _fail(args, str(e), e, e.exit_code)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            where = e.filename or "the target"
            err: SnapferryError = NoSpaceError(f"no space left on the device ({where}); free space and rerun")
            return _fail(args, str(err), err, err.exit_code)
        return _fail(args, f"{e.strerror or e} ({e.filename or 'no file'})", e, EXIT_FAILURE)
    except Exception as e:  # a bug: one line, the trace only on request
        if os.environ.get("SNAPFERRY_DEBUG"):
            raise
        click.echo(
            f"snapferry: internal error: {type(e).__name__}: {e} (set SNAPFERRY_DEBUG=1 for the trace "
            "and please report it)",
            err=True,
        )
        return _json_error(args, f"internal error: {type(e).__name__}: {e}", e, EXIT_FAILURE)


def _fail(args: list[str], message: str, err: Exception, code: int) -> int:
    click.echo(f"snapferry: error: {message}", err=True)
    return _json_error(args, message, err, code)


def _json_error(args: list[str], message: str, err: Exception, code: int) -> int:
    """Scripts that asked for --json get the failure as JSON on stdout too."""
    if "--json" in args:
        emit_error(next((a for a in args if a in COMMANDS), None), message, type(err).__name__, code)
    return code


def _interrupted(signum: int) -> int:
    name = signal.Signals(signum).name
    # The program as it was called: snapferry, or a drop-in script (snapferry-vmbackup ...).
    prog = os.path.basename(sys.argv[0]) if os.path.basename(sys.argv[0]).startswith("snapferry") else "snapferry"
    cmd = shlex.join([prog, *sys.argv[1:]]) if sys.argv[1:] else "the same command"
    click.echo(
        f"snapferry: interrupted by {name}; nothing is lost and the work is resumable: rerun "
        f"`{cmd}` to continue",
        err=True,
    )
    return 128 + signum


def entry() -> None:
    _big_buffers_unmapped_when_freed()
    _open_files_up_to_the_hard_limit()
    sys.exit(main())


def _open_files_up_to_the_hard_limit() -> None:
    """Raise the soft limit of open files to the hard one, as Go's runtime does for vmrestore.

    The default soft limit (1024) is a relic of select(2), which snapferry does not use;
    a restore of tens of thousands of files keeps up to a few hundred of them open (the
    downloader bounds it), and a manager serves HTTP beside its runs.
    """
    import resource  # only here: the CLI's entry, not the library

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = nofile_soft_target(soft, hard, resource.RLIM_INFINITY, _nr_open)
    if want is not None:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def nofile_soft_target(soft: int, hard: int, infinity: int, nr_open: Callable[[], int]) -> int | None:
    """The soft limit of open files to raise to, or None to leave it. An unlimited hard
    limit (possible on BSDs and macOS; Linux refuses one above fs.nr_open) cannot be the
    soft one too, since setrlimit refuses an infinite soft limit of open files: then the
    cap is the most a process may open."""
    cap = hard if hard != infinity else nr_open()
    return None if soft == infinity or soft >= cap else cap


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20  # Linux's default fs.nr_open


def _big_buffers_unmapped_when_freed() -> None:
    """Allocations of 1 MiB and more get mappings of their own, returned when freed.

    glibc raises its mmap threshold after the first big free and then serves later
    upload chunks (16 MiB, on eight threads' arenas) from heaps it keeps: the peak
    RSS of an s3:// backup grew with the dataset (132, 172, 196 MiB at 1, 3, 6 GiB).
    A process-wide setting, so the CLI makes it, not the library.
    """
    with contextlib.suppress(AttributeError):  # not glibc: nothing to tune
        LIBC.mallopt(_M_MMAP_THRESHOLD, 1 << 20)


