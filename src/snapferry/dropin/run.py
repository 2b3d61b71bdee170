"""Run a vmbackup/vmrestore/vmbackupmanager command line with snapferry.

Parse it as Go does, say once which flags are ignored, set up logging as the
-logger* flags ask, serve /metrics while the run lasts (vmbackup, vmrestore), and run
the translated command through snapferry's own CLI, so a drop-in run builds its
RunSettings and action object (`Backup`, `Restore`) exactly as the CLI does
(cli/_common.py `settings_from`), never by a path of its own. The exit code is that run's:
0 on success, non-zero on any failure; a bad command line exits 2, as Go's flag
package makes the originals do.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version

import click

from ..errors import EXIT_USAGE, SnapferryError
from .goflags import FlagKind, FlagSet, GoFlagError, HelpRequested
from .metrics import RunMetrics, serving
from .tables import TABLES, Tool
from .translate import Accepted, LogSetup, Translation, redacted, translate

log = logging.getLogger("snapferry")

CliMain = Callable[[list[str]], int]


def flag_set(tool: Tool) -> FlagSet:
    return FlagSet(tool.value, (r.spec for r in TABLES[tool]))


def run(tool: Tool, argv: Sequence[str], cli_main: CliMain, accepted: Accepted | None = None,
        environ: Mapping[str, str] | None = None) -> int:
    """`argv` is the original's command line without the program name; `cli_main` runs a
    snapferry command line, `accepted` tells the options a snapferry subcommand takes."""
    prog = f"snapferry-{tool.value}"
    env = os.environ if environ is None else environ
    try:
        parsed = flag_set(tool).parse(argv, env, interspersed=tool is Tool.VMBACKUPMANAGER)
    except HelpRequested:
        click.echo(usage(tool))
        return 0
    except GoFlagError as e:
        click.echo(f"{prog}: {e}; run `{prog} -help` for the flags", err=True)
        return EXIT_USAGE
    if parsed.get("version"):
        click.echo(f"{prog} (snapferry {version('snapferry')}, a drop-in for {tool.value})")
        return 0
    try:
        plan = translate(tool, parsed, accepted)
    except SnapferryError as e:
        click.echo(f"{prog}: error: {e}", err=True)
        return e.exit_code
    _setup_logging(plan.log)
    for name, why in plan.ignored:
        log.warning("-%s is accepted and ignored: %s", name, why)
    for note in plan.notes:
        log.info("%s", note)
    for name, var in parsed.from_env.items():
        log.info("-%s is read from the environment variable %s", name, var)
    return _execute(tool, plan, cli_main)


def _execute(tool: Tool, plan: Translation, cli_main: CliMain) -> int:
    log.info("running: snapferry %s", redacted(plan.argv, plan.secrets))
    metrics = RunMetrics(tool.value, plan.direction)
    try:
        with serving(metrics, plan.listen, plan.security):
            return cli_main(plan.argv)
    except SnapferryError as e:  # the listener could not start: nothing ran
        click.echo(f"snapferry-{tool.value}: error: {e}", err=True)
        return e.exit_code


class _JsonFormatter(logging.Formatter):
    """VictoriaMetrics' -loggerFormat=json fields: ts, level, caller, msg."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        level = {"WARNING": "warn", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        caller = f"{record.module}.py:{record.lineno}"
        return json.dumps({"ts": ts, "level": level, "caller": caller, "msg": record.getMessage()})


def _setup_logging(setup: LogSetup) -> None:
    """The run's logging as the -logger* flags ask; the nested CLI's own basicConfig then
    finds it configured and keeps it."""
    handler = logging.StreamHandler(sys.stdout if setup.stdout else sys.stderr)
    handler.setFormatter(_JsonFormatter() if setup.json else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=setup.level, handlers=[handler], force=True)
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def usage(tool: Tool) -> str:
    """The -help text: every flag the original has, and what snapferry does with it."""
    lines = [
        f"snapferry-{tool.value}: a drop-in for VictoriaMetrics' {tool.value}; the same command line runs "
        "snapferry.",
        "",
    ]
    if tool is Tool.VMBACKUPMANAGER:
        lines += ["subcommands: backup list | backup lock NAME | backup unlock NAME | restore | "
                  "restore create NAME | restore get | restore delete", ""]
    lines.append("command-line flags:")
    for rule in sorted(TABLES[tool], key=lambda r: r.name.lower()):
        kind = "" if rule.kind is FlagKind.BOOL else f" {rule.kind.value}"
        lines.append(f"  -{rule.name}{kind}")
        lines.append(f"     {rule.describe()}")
    return "\n".join(lines)
