"""Go's flag syntax, VictoriaMetrics' value types and envflag, as the originals parse them."""

from __future__ import annotations

import pytest

from snapferry.dropin.goflags import (
    FlagKind,
    FlagSet,
    FlagSpec,
    GoFlagError,
    HelpRequested,
    parse_duration,
    parse_int,
    parse_size,
    split_array,
)

K = FlagKind
SPECS = [
    FlagSpec("dst", K.STRING),
    FlagSpec("concurrency", K.INT),
    FlagSpec("skipBackupCompleteCheck", K.BOOL),
    FlagSpec("s3ForcePathStyle", K.BOOL),
    FlagSpec("maxBytesPerSecond", K.SIZE),
    FlagSpec("backupInterval", K.DURATION),
    FlagSpec("pushmetrics.url", K.ARRAY),
    FlagSpec("snapshot.createURL", K.STRING),
    FlagSpec("memory.allowedPercent", K.FLOAT),
]


def parse(*argv: str, env: dict[str, str] | None = None, interspersed: bool = False) -> dict[str, object]:
    return dict(FlagSet("t", SPECS).parse(list(argv), env or {}, interspersed=interspersed).values)


@pytest.mark.parametrize(
    "argv",
    [
        ["-dst=fs:///b"],
        ["-dst", "fs:///b"],
        ["--dst=fs:///b"],
        ["--dst", "fs:///b"],
    ],
)
def test_value_forms(argv: list[str]) -> None:
    assert parse(*argv) == {"dst": "fs:///b"}


def test_a_value_may_start_with_a_dash_or_hold_an_equals_sign() -> None:
    assert parse("-dst", "-x") == {"dst": "-x"}
    assert parse("-snapshot.createURL=http://h:8428/snapshot/create?a=b") == {
        "snapshot.createURL": "http://h:8428/snapshot/create?a=b"
    }
    assert parse("-dst=") == {"dst": ""}


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["-skipBackupCompleteCheck"], True),
        (["--skipBackupCompleteCheck"], True),
        (["-skipBackupCompleteCheck=true"], True),
        (["-skipBackupCompleteCheck=1"], True),
        (["-skipBackupCompleteCheck=T"], True),
        (["-skipBackupCompleteCheck=false"], False),
        (["-skipBackupCompleteCheck=0"], False),
        (["-skipBackupCompleteCheck=FALSE"], False),
    ],
)
def test_boolean_forms(argv: list[str], value: bool) -> None:
    assert parse(*argv) == {"skipBackupCompleteCheck": value}


def test_a_boolean_never_takes_the_next_argument() -> None:
    fs = FlagSet("t", SPECS)
    got = fs.parse(["-s3ForcePathStyle", "false", "-dst=x"], {})
    assert got.values == {"s3ForcePathStyle": True}
    assert got.args == ["false", "-dst=x"]  # the first positional ends the flags, as in Go


def test_double_dash_and_lone_dash_end_the_flags() -> None:
    got = FlagSet("t", SPECS).parse(["-dst=a", "--", "-concurrency=3"], {})
    assert got.values == {"dst": "a"} and got.args == ["-concurrency=3"]
    got = FlagSet("t", SPECS).parse(["-dst=a", "-", "-concurrency=3"], {})
    assert got.values == {"dst": "a"} and got.args == ["-", "-concurrency=3"]


def test_interspersed_positionals_for_subcommands() -> None:
    got = FlagSet("t", SPECS).parse(["backup", "lock", "daily/2021-02-13", "-dst=x", "-concurrency", "2"], {},
                                    interspersed=True)
    assert got.args == ["backup", "lock", "daily/2021-02-13"]
    assert got.values == {"dst": "x", "concurrency": 2}


def test_the_last_value_wins_and_arrays_accumulate() -> None:
    assert parse("-dst=a", "-dst=b") == {"dst": "b"}
    assert parse("-pushmetrics.url=http://a,http://b", "-pushmetrics.url", "http://c") == {
        "pushmetrics.url": ["http://a", "http://b", "http://c"]
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-nosuchflag=1"], "flag provided but not defined: -nosuchflag"),
        (["--nosuchflag"], "flag provided but not defined: -nosuchflag"),
        (["-Dst=x"], "flag provided but not defined: -Dst"),  # names are case-sensitive
        (["---dst=x"], "bad flag syntax: ---dst=x"),
        (["-=x"], "bad flag syntax: -=x"),
        (["-dst"], "flag needs an argument: -dst"),
        (["-concurrency=ten"], 'invalid value "ten" for flag -concurrency: parse error'),
        (["-concurrency", "1.5"], 'invalid value "1.5" for flag -concurrency: parse error'),
        (["-skipBackupCompleteCheck=yes"], 'invalid boolean value "yes" for -skipBackupCompleteCheck: parse error'),
        (["-maxBytesPerSecond=10XB"],
         'invalid value "10XB" for flag -maxBytesPerSecond: strconv.ParseFloat: parsing "10XB": invalid syntax'),
        (["-backupInterval=1h30"], 'invalid value "1h30" for flag -backupInterval: parse error'),
        (["-backupInterval=soon"], 'invalid value "soon" for flag -backupInterval: parse error'),
    ],
)
def test_errors_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(GoFlagError) as e:
        parse(*argv)
    assert str(e.value).startswith(message)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("flag", ["-h", "-help", "--help", "--h"])
def test_help(flag: str) -> None:
    with pytest.raises(HelpRequested):
        parse("-dst=x", flag)


def test_ints_as_strconv_parseint_base_0() -> None:
    assert [parse_int(s) for s in ("10", "-3", "+4", "0x1F", "0o17", "017", "0b101", "1_000")] == [
        10, -3, 4, 31, 15, 15, 5, 1000
    ]
    for bad in ("", "1e3", "0x", "9_", "1__0", "99999999999999999999"):
        with pytest.raises(ValueError):
            parse_int(bad)


def test_durations_as_time_parseduration() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("8h") == 8 * 3600
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("300ms") == pytest.approx(0.3)
    assert parse_duration("2m3.5s") == 123.5
    assert parse_duration("-1m") == -60
    assert parse_duration("0") == 0
    for bad in ("", "1", "h", "1d", "1h 30m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_sizes_as_flagutil_bytes() -> None:
    assert parse_size("10MiB") == 10 * 1024 * 1024
    assert parse_size("10MB") == 10_000_000
    assert parse_size("1.5GiB") == 1536 * 1024 * 1024
    assert parse_size("2kib") == 2048  # VictoriaMetrics upper-cases, then writes the i small
    assert parse_size("4096") == 4096
    assert parse_size("1TB") == 10**12
    for bad in ("", "MiB", "10 MiB", "ten", "10PB"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_arrays_split_on_commas_outside_quotes_and_braces() -> None:
    assert split_array("a,b") == ["a", "b"]
    assert split_array("instance=\"a,b\",job=x") == ['instance="a,b"', "job=x"]
    assert split_array("{a,b},c") == ["{a,b}", "c"]


def test_env_flags_need_envflag_enable() -> None:
    env = {"dst": "fs:///from-env", "snapshot_createURL": "http://h/snapshot/create", "concurrency": "4"}
    assert parse(env=env) == {}
    got = parse("-envflag.enable", "-concurrency=2", env=env)
    # dots become underscores; the command line wins over the environment
    assert got == {"envflag.enable": True, "concurrency": 2, "dst": "fs:///from-env",
                   "snapshot.createURL": "http://h/snapshot/create"}


def test_env_flags_with_a_prefix() -> None:
    env = {"VM_dst": "fs:///p", "dst": "fs:///no", "VM_skipBackupCompleteCheck": "true",
           "VM_pushmetrics_url": "http://a,http://b"}
    got = parse("-envflag.enable=true", "-envflag.prefix=VM_", env=env)
    assert got["dst"] == "fs:///p"
    assert got["skipBackupCompleteCheck"] is True
    assert got["pushmetrics.url"] == ["http://a", "http://b"]


def test_a_bad_env_value_names_flag_and_variable() -> None:
    with pytest.raises(GoFlagError) as e:
        parse("-envflag.enable", env={"concurrency": "many"})
    assert 'cannot set flag concurrency to "many", which is read from environment variable "concurrency"' in str(
        e.value
    )
