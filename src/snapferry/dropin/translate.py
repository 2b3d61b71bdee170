"""A parsed vmbackup/vmrestore/vmbackupmanager command line -> the snapferry command line.

The result runs through snapferry's own click commands, so a drop-in run and a
native run are one code path; this module only decides which command and options.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..httpsec import FLAGS, Security, security_from
from .goflags import ParsedFlags, ValueType
from .tables import Action, Rule, Tool, rules

DEFAULT_STORAGE_DATA_PATH = "victoria-metrics-data"  # the originals' default, relative to the working directory
DEFAULT_PORTS = {Tool.VMBACKUP: 8420, Tool.VMRESTORE: 8421}
LOOPBACK = "127.0.0.1"
# -httpListenAddr=:8300, every interface (`snapferry manager` itself keeps 127.0.0.1:8300)
MANAGER_DEFAULT_LISTEN = "0.0.0.0:8300"

_LEVELS = {"INFO": "info", "WARN": "warning", "ERROR": "error", "FATAL": "error", "PANIC": "error"}


class Direction(enum.Enum):
    """Which of the originals' byte counters the run moves."""

    UPLOADED = "uploaded"
    DOWNLOADED = "downloaded"


@dataclass(frozen=True)
class ListenAddr:
    host: str
    port: int
    explicit: bool  # given by -httpListenAddr (bind failure is an error) or the default (a warning)


@dataclass(frozen=True)
class LogSetup:
    level: int = logging.INFO
    json: bool = False
    stdout: bool = False


@dataclass
class Translation:
    argv: list[str]
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (flag, why)
    listen: ListenAddr | None = None
    direction: Direction = Direction.UPLOADED
    log: LogSetup = field(default_factory=LogSetup)
    notes: list[str] = field(default_factory=list)  # logged at info level once logging is set up
    security: Security = field(default_factory=Security)  # of the /metrics listener
    secrets: frozenset[str] = frozenset()  # values of the flags -secret.flags names: hidden in the log


# The server flags -> httpsec's settings (FLAGS names their native options)
SERVER_FLAGS = {dropin[1:]: key for key, (_native, dropin) in FLAGS.items()}
# the options whose value is a secret: the log line of the translated command hides it
SECRET_OPTIONS = {"--http-auth-password", "--metrics-auth-key", "--api-password"}


# The options a snapferry (sub)command accepts, by its words after `snapferry`; from the
# click commands themselves, so the mapping follows them (run.py passes it).
Accepted = Callable[[tuple[str, ...]], set[str]]


def translate(tool: Tool, parsed: ParsedFlags, accepted: Accepted | None = None) -> Translation:
    plan = _translate(tool, parsed, accepted)
    plan.secrets = _secret_values(rules(tool), parsed)
    return plan


def _secret_values(table: dict[str, Rule], parsed: ParsedFlags) -> frozenset[str]:
    """-secret.flags: the values of the flags it names, hidden wherever they would show in the
    log (VictoriaMetrics hides them in its logs and on /metrics). A name of no flag is refused:
    a typo there would print the secret it meant to hide."""
    out: set[str] = set()
    for raw in _list(parsed.get("secret.flags")):
        name = raw.strip().lstrip("-")
        if not name:
            continue
        if name not in table:
            raise UsageError(f"-secret.flags names -{name}, which is no flag of this command; check the name")
        value = parsed.get(name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v:
                out.add(v)
    return frozenset(out)


def _translate(tool: Tool, parsed: ParsedFlags, accepted: Accepted | None = None) -> Translation:
    table = rules(tool)
    for name, value in parsed.values.items():
        if table[name].action is Action.REFUSED and value not in (False, "", []):
            raise UsageError(f"-{name} is not supported: {table[name].target}")
    log = _log_setup(parsed)
    level_name = logging.getLevelName(log.level).lower()
    head = ["--log-level", level_name]
    structured = _plain_options(table, parsed)
    early_notes = _concurrency_floor(structured)
    key_file = _str(parsed, "snapferry.encryptionKeyFile")
    ignored = [(name, table[name].target) for name in parsed.values if table[name].action is Action.IGNORED]
    if tool is Tool.VMBACKUPMANAGER:
        notes: list[str] = early_notes
        if key_file:  # `manager` encrypts; `manager restore` only takes the key (the filter below)
            structured += [("--encrypt", None), ("--encryption-key-file", key_file)]
        argv = head + _manager(parsed, structured, accepted, notes)
        return Translation(argv, ignored, None, Direction.UPLOADED, log, notes)
    options = _flat(structured)
    urls = [u for u in _list(parsed.get("pushmetrics.url")) if u]
    if urls:  # snapferry pushes once, at the end, to one URL
        options += ["--push-metrics-url", urls[0]]
        ignored += [("pushmetrics.url", f"metrics are pushed to the first URL only, not to {u}") for u in urls[1:]]
    if parsed.args:
        raise UsageError(
            f"unprocessed command-line args left: {parsed.args}; the most likely reason is a missing `=` "
            "between a boolean flag and its value (write -flag=false)"
        )
    listen = _listen(tool, parsed.get("httpListenAddr"))
    security = security_from(_server_values(parsed))
    if key_file:
        options += ["--encryption-key-file", key_file]
    if tool is Tool.VMRESTORE:
        src = _str(parsed, "src")
        if not src:
            raise UsageError("-src is missing; name the backup, e.g. -src=s3://bucket/path/to/backup")
        argv = ["restore", "--src", src, "--dst", _str(parsed, "storageDataPath") or DEFAULT_STORAGE_DATA_PATH]
        return Translation(head + argv + options, ignored, listen, Direction.DOWNLOADED, log, early_notes,
                           security=security)
    command = _vmbackup(parsed)
    if "--snapshot-create-url" not in command:
        # -snapshotName, or a server-side copy (-origin alone): no snapshot API is called, so its
        # TLS settings have nothing to protect (vmbackup does not use them either)
        why = "no snapshot API is called without -snapshot.createURL"
        ignored += [(name, why) for name in parsed.values if name.startswith("snapshot.tls")]
        kept = _flat([o for o in structured if not o[0].startswith("--snapshot-tls-")])
        options = kept + options[len(_flat(structured)):]  # the --push-metrics-url after them stays
    if key_file and command[0] == "backup":
        options.append("--encrypt")
    return Translation(head + command + options, ignored, listen, Direction.UPLOADED, log, early_notes,
                       security=security)


def _server_values(parsed: ParsedFlags) -> dict[str, Any]:
    """The server flags as httpsec's settings; an array flag names one value (one listener)."""
    out: dict[str, Any] = {}
    for name, key in SERVER_FLAGS.items():
        value = parsed.get(name)
        if isinstance(value, list):
            given = [v for v in value if v]
            if key == "cipher_suites":
                value = ",".join(given)
            elif len(set(given)) > 1:
                raise UsageError(f"-{name} has {len(given)} values; snapferry serves one address, give one")
            else:
                value = given[0] if given else ""
        out[key] = value
    return out


def redacted(argv: list[str], secrets: frozenset[str] = frozenset()) -> str:
    """A translated command line for the log, secrets hidden: the values of the secret options,
    and any word holding a value -secret.flags named."""
    shown = [("<hidden>" if (i and argv[i - 1] in SECRET_OPTIONS) or any(x in w for x in secrets) else w)
             for i, w in enumerate(argv)]
    return " ".join(shown)


def _vmbackup(parsed: ParsedFlags) -> list[str]:
    dst = _str(parsed, "dst")
    if not dst:
        raise UsageError("-dst is missing; name where the backup goes, e.g. -dst=s3://bucket/path/to/backup")
    create, name, origin = _str(parsed, "snapshot.createURL"), _str(parsed, "snapshotName"), _str(parsed, "origin")
    if create and name:
        raise UsageError("-snapshotName shouldn't be set if -snapshot.createURL is set, since snapshots are "
                         "created automatically in this case; drop one of them")
    if not create and not name:
        if origin:  # vmbackup's server-side copy of an existing backup
            return ["copy", "--src", origin, "--dst", dst]
        raise UsageError("`-snapshotName` or `-snapshot.createURL` must be provided (or -origin alone for a "
                         "server-side copy of a backup)")
    argv = ["backup", "--storage-data-path", _str(parsed, "storageDataPath") or DEFAULT_STORAGE_DATA_PATH]
    argv += ["--snapshot-create-url", create] if create else ["--snapshot-name", name]
    if create and _str(parsed, "snapshot.deleteURL"):
        argv += ["--snapshot-delete-url", _str(parsed, "snapshot.deleteURL")]
    argv += ["--dst", dst]
    if origin:
        argv += ["--origin", origin]
    return argv


_MANAGER_SUBCOMMANDS: dict[tuple[str, ...], int] = {
    # the words of each subcommand -> how many operands (a backup name) follow them
    (): 0,
    ("backup", "list"): 0,
    ("backup", "lock"): 1,
    ("backup", "unlock"): 1,
    ("restore",): 0,
    ("restore", "get"): 0,
    ("restore", "delete"): 0,
    ("restore", "create"): 1,
}


def _manager(parsed: ParsedFlags, options: list[Option], accepted: Accepted | None,
             notes: list[str]) -> list[str]:
    """vmbackupmanager's flags are global; each `snapferry manager` subcommand takes the
    options it has a use for (e.g. `restore get` only --storage-data-path): the rest of a
    shared command line, as the operator passes it to every container, is left out.

    Its `backup ...`/`restore create|get|delete` ask vmbackupmanager's API, which knows
    -dst and -storageDataPath; snapferry's read the remote and the data path directly, so
    where the command line does not name them, SNAPFERRY_DST and SNAPFERRY_STORAGE_DATA_PATH
    (set in the sidecar's environment) do."""
    words = parsed.args
    for cmd, operands in sorted(_MANAGER_SUBCOMMANDS.items(), key=lambda kv: -len(kv[0])):
        if tuple(words[: len(cmd)]) == cmd and len(words) == len(cmd) + operands:
            break
    else:
        raise UsageError(
            f"vmbackupmanager does not know the subcommand {' '.join(words)!r}; use one of: backup list, "
            "backup lock NAME, backup unlock NAME, restore, restore create NAME, restore get, restore delete"
        )
    addrs = [a for a in _list(parsed.get("httpListenAddr")) if a]
    if addrs:
        host, sep, port = addrs[0].rpartition(":")
        # Go's ":8300" is every interface: spelled out for the manager's listener
        options.append(("--http-listen-addr", f"0.0.0.0:{port}" if sep and not host else addrs[0]))
    elif cmd == ():
        # vmbackupmanager's own default, which the operator relies on: it passes no
        # -httpListenAddr and probes /health on the pod's IP, port 8300.
        options.append(("--http-listen-addr", MANAGER_DEFAULT_LISTEN))
    for key, value in _server_values(parsed).items():
        if value is True:
            options.append((FLAGS[key][0], None))
        elif value:
            options.append((FLAGS[key][0], str(value)))
    if cmd and cmd != ("restore",):  # a client of the running manager: -apiURL and the API's credentials
        client = _str(parsed, "apiURL")
        if client:
            options.append(("--api-url", client))
        for flag_name, opt in (("httpAuth.username", "--api-username"), ("httpAuth.password", "--api-password")):
            if _str(parsed, flag_name):
                options.append((opt, _str(parsed, flag_name)))
    delay = parsed.get("http.shutdownDelay")
    if isinstance(delay, float) and delay > 0:
        options.append(("--http-shutdown-delay", f"{delay:g}"))
    interval = parsed.get("backupInterval")
    if isinstance(interval, float) and interval > 0:
        options.append(("--backup-interval", f"{interval:g}"))
    if cmd in (("backup", "list"), ("backup", "lock"), ("backup", "unlock")):
        options.append(("--json", None))  # vmbackupmanager prints these as JSON
    path = ("manager", *cmd)
    if accepted is not None:
        takes = accepted(path)
        left_out = sorted({opt for opt, _ in options if opt not in takes})
        if left_out:
            notes.append(f"`snapferry {' '.join(path)}` has no use for {', '.join(left_out)}")
        options = [(opt, v) for opt, v in options if opt in takes]
    return [*path, *words[len(cmd):], *_flat(options)]


Option = tuple[str, str | None]  # (--option, value) or (--switch, None)


def _plain_options(table: dict[str, Rule], parsed: ParsedFlags) -> list[Option]:
    out: list[Option] = []
    for name, value in parsed.values.items():
        rule = table[name]
        if rule.action is Action.OPTION:
            out.append((rule.target, _format(value)))
        elif rule.action is Action.SWITCH and value is True:
            out.append((rule.target, None))
        elif rule.action is Action.NEGATABLE:
            out.append((rule.target if value else "--no-" + rule.target[2:], None))
    return out


def _concurrency_floor(options: list[Option]) -> list[str]:
    """`-concurrency=0` (or below): vmbackup and vmrestore 1.79.5 and 1.145.0 run with it and
    finish the work; snapferry's --concurrency starts at 1, so such a value runs as 1."""
    for i, (opt, value) in enumerate(options):
        if opt == "--concurrency" and value is not None and int(value) < 1:
            options[i] = (opt, "1")
            return [f"-concurrency={value} runs as -concurrency=1, as the originals run it to the end"]
    return []


def _flat(options: list[Option]) -> list[str]:
    return [w for opt, value in options for w in ((opt,) if value is None else (opt, value))]


def _log_setup(parsed: ParsedFlags) -> LogSetup:
    level = _str(parsed, "loggerLevel") or "INFO"
    if level not in _LEVELS:
        raise UsageError(f"unsupported -loggerLevel={level!r}; use INFO, WARN, ERROR, FATAL or PANIC")
    fmt = _str(parsed, "loggerFormat") or "default"
    if fmt not in ("default", "json"):
        raise UsageError(f"unsupported -loggerFormat={fmt!r}; use default or json")
    output = _str(parsed, "loggerOutput") or "stderr"
    if output not in ("stderr", "stdout"):
        raise UsageError(f"unsupported -loggerOutput={output!r}; use stderr or stdout")
    return LogSetup(getattr(logging, _LEVELS[level].upper()), fmt == "json", output == "stdout")


def _listen(tool: Tool, value: ValueType | None) -> ListenAddr:
    if value is None:
        # Not given: serve the original's port, on loopback only (never all interfaces by default).
        return ListenAddr(LOOPBACK, DEFAULT_PORTS[tool], explicit=False)
    assert isinstance(value, str)
    host, sep, port_s = value.rpartition(":")
    if not sep or not port_s.isdigit() or int(port_s) > 65535:
        raise UsageError(f"-httpListenAddr={value!r} is not host:port; write e.g. -httpListenAddr=127.0.0.1:8420")
    host = host.strip("[]") or "0.0.0.0"  # Go's ":8420" means every interface: the user asked for it
    return ListenAddr(host, int(port_s), explicit=True)


def _format(value: ValueType) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def _str(parsed: ParsedFlags, name: str) -> str:
    v = parsed.get(name)
    return v if isinstance(v, str) else ""


def _list(value: ValueType | None) -> list[str]:
    return value if isinstance(value, list) else []
