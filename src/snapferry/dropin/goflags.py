"""Go's `flag` package, as VictoriaMetrics' binaries parse their command lines.

The rules are Go's `FlagSet.parseOne`: `-name=value`, `-name value` (not for
booleans), `--name` the same as `-name`, booleans as `-name` or `-name=true|false`
(strconv.ParseBool's spellings), a lone `-` or the first non-flag argument ends
the flags, `--` ends them and is dropped, `-h`/`-help` ask for usage when no flag
of that name exists. Values are parsed as Go does: ints by strconv.ParseInt base 0,
durations by time.ParseDuration, sizes by VictoriaMetrics' lib/flagutil.Bytes
(KB..TB powers of 1000, KiB..TiB powers of 1024), arrays by lib/flagutil.Array
(comma-separated or repeated). `-envflag.enable` then fills the flags the command
line did not set from the environment (`-envflag.prefix` + the name with dots as
underscores), as lib/envflag does.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError

ValueType = bool | int | float | str | list[str]


class FlagKind(enum.Enum):
    BOOL = "bool"
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    DURATION = "duration"  # parsed to seconds (float)
    SIZE = "size"  # parsed to bytes (int)
    ARRAY = "array"  # list of strings


@dataclass(frozen=True)
class FlagSpec:
    name: str
    kind: FlagKind
    default: ValueType | None = None


class GoFlagError(UsageError):
    """A command line the Go original would refuse (it exits 2 as well)."""


class HelpRequested(Exception):
    """`-h` or `-help`: print the usage and exit 0, as Go's flag.ExitOnError does."""


@dataclass
class ParsedFlags:
    values: dict[str, ValueType] = field(default_factory=dict)  # explicitly set, from argv or env
    from_env: dict[str, str] = field(default_factory=dict)  # name -> the variable that set it
    args: list[str] = field(default_factory=list)  # positional arguments, in order

    def get(self, name: str) -> ValueType | None:
        return self.values.get(name)


# --- values -----------------------------------------------------------------------------

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(s: str) -> bool:
    """strconv.ParseBool."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("parse error")


_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")


def parse_int(s: str) -> int:
    """strconv.ParseInt(s, 0, 64): decimal, 0x hex, 0o or leading-0 octal, 0b binary."""
    if not _INT.fullmatch(s) or "__" in s or s.endswith("_"):
        raise ValueError("parse error")
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-").replace("_", "")
    octal = len(body) > 1 and body[0] == "0" and body[1].isdigit()  # Go reads "017" as octal
    n = sign * int(body, 8 if octal else 0)
    if not -(1 << 63) <= n < (1 << 63):
        raise ValueError("value out of range")
    return n


_FLOAT = re.compile(r"[+-]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


def parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) for the decimal forms people write."""
    if not _FLOAT.fullmatch(s):
        raise ValueError("parse error")
    return float(s.replace("_", ""))


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(s: str) -> float:
    """time.ParseDuration, in seconds: "1h30m", "1.5s", "300ms", "-2m", "0"."""
    body = s.lstrip("+-")
    sign = -1.0 if s.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"time: invalid duration {_go_quote(s)}")
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            if re.match(r"(\d+\.?\d*|\.\d+)", body[pos:]):
                raise ValueError(f"time: missing unit in duration {_go_quote(s)}")
            raise ValueError(f"time: invalid duration {_go_quote(s)}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


_SIZE_SUFFIXES = (
    ("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3), ("TiB", 1024**4),
    ("KB", 1000), ("MB", 1000**2), ("GB", 1000**3), ("TB", 1000**4),
)


def parse_size(s: str) -> int:
    """lib/flagutil.Bytes: a number with an optional KB/MB/GB/TB or KiB/MiB/GiB/TiB suffix
    (upper- or lower-case), fractions allowed ("1.5GiB")."""
    value = s.upper().replace("I", "i")
    for suffix, mult in _SIZE_SUFFIXES:
        if value.endswith(suffix):
            return int(parse_float(value[: -len(suffix)]) * mult)
    f = parse_float(value)
    if math.isnan(f) or math.isinf(f):
        raise ValueError("parse error")
    return int(f)


def split_array(s: str) -> list[str]:
    """lib/flagutil.Array: comma-separated, commas inside quotes or (), [], {} kept."""
    out: list[str] = []
    depth, quote = 0, ""
    cur: list[str] = []
    for ch in s:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}" and depth > 0:
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _convert(spec: FlagSpec, raw: str, previous: ValueType | None) -> ValueType:
    kind = spec.kind
    if kind is FlagKind.BOOL:
        return parse_bool(raw)
    if kind is FlagKind.STRING:
        return raw
    if kind is FlagKind.INT:
        return parse_int(raw)
    if kind is FlagKind.FLOAT:
        return parse_float(raw)
    if kind is FlagKind.DURATION:
        try:
            return parse_duration(raw)
        except ValueError:
            raise ValueError("parse error") from None  # Go's durationValue.Set hides the detail
    if kind is FlagKind.SIZE:
        try:
            return parse_size(raw)
        except ValueError:
            # flagutil.Bytes returns strconv's error as it is
            raise ValueError(f"strconv.ParseFloat: parsing {_go_quote(raw.upper().replace('I', 'i'))}: "
                             "invalid syntax") from None
    before = list(previous) if isinstance(previous, list) else []
    return before + split_array(raw)


# --- the parser ---------------------------------------------------------------------------


class FlagSet:
    """The flags of one tool, and Go's parse of a command line against them."""

    def __init__(self, tool: str, specs: Iterable[FlagSpec]) -> None:
        self.tool = tool
        self.specs = {s.name: s for s in specs}
        for name, kind in (("envflag.enable", FlagKind.BOOL), ("envflag.prefix", FlagKind.STRING)):
            self.specs.setdefault(name, FlagSpec(name, kind))

    def parse(self, argv: Sequence[str], environ: Mapping[str, str], *, interspersed: bool = False) -> ParsedFlags:
        """Parse `argv` (without the program name), then the environment when -envflag.enable.

        With `interspersed`, parsing goes on after a positional argument (vmbackupmanager's
        `backup lock NAME -dst=...`); otherwise the first positional ends the flags, as in Go.
        """
        out = ParsedFlags()
        args = list(argv)
        while args:
            s = args[0]
            if len(s) < 2 or s[0] != "-":
                out.args.append(args.pop(0))
                if interspersed:
                    continue
                out.args.extend(args)
                break
            minuses = 2 if s[1] == "-" else 1
            if s == "--":
                out.args.extend(args[1:])
                break
            name = s[minuses:]
            if not name or name[0] in "-=":
                raise GoFlagError(f"bad flag syntax: {s}")
            args.pop(0)
            has_value, value = False, ""
            if "=" in name[1:]:
                i = name.index("=", 1)
                name, value, has_value = name[:i], name[i + 1 :], True
            spec = self.specs.get(name)
            if spec is None:
                if name in ("h", "help"):
                    raise HelpRequested()
                raise GoFlagError(f"flag provided but not defined: -{name}")
            if spec.kind is FlagKind.BOOL:
                if has_value:
                    try:
                        out.values[name] = parse_bool(value)
                    except ValueError as e:
                        raise GoFlagError(f"invalid boolean value {_go_quote(value)} for -{name}: {e}") from None
                else:
                    out.values[name] = True
                continue
            if not has_value and args:
                value, has_value = args.pop(0), True
            if not has_value:
                raise GoFlagError(f"flag needs an argument: -{name}")
            try:
                out.values[name] = _convert(spec, value, out.values.get(name))
            except ValueError as e:
                raise GoFlagError(f"invalid value {_go_quote(value)} for flag -{name}: {e}") from None
        if out.values.get("envflag.enable"):
            self._from_env(out, environ)
        return out

    def _from_env(self, out: ParsedFlags, environ: Mapping[str, str]) -> None:
        prefix = out.values.get("envflag.prefix", "")
        assert isinstance(prefix, str)
        set_on_command_line = set(out.values)
        for name, spec in self.specs.items():
            if name in set_on_command_line:
                continue
            var = prefix + name.replace(".", "_")
            if var not in environ:
                continue
            raw = environ[var]
            try:
                out.values[name] = _convert(spec, raw, None)
            except ValueError as e:
                raise GoFlagError(
                    f"cannot set flag {name} to {_go_quote(raw)}, which is read from environment variable "
                    f"{_go_quote(var)}: {e}"
                ) from None
            out.from_env[name] = var
