"""The flag tables and the translation: what each command line becomes, and docs/dropin.md
lists every flag of the three originals as the tables handle it."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.cli.dropin_cmd import accepted
from snapferry.dropin.goflags import FlagSet
from snapferry.dropin.run import flag_set
from snapferry.dropin.tables import TABLES, Action, Tool
from snapferry.dropin.translate import ListenAddr, redacted, translate
from snapferry.errors import UsageError

DOC = Path(__file__).resolve().parents[2] / "docs" / "dropin.md"


def tr(tool: Tool, *argv: str, env: dict[str, str] | None = None) -> list[str]:
    fs: FlagSet = flag_set(tool)
    parsed = fs.parse(list(argv), env or {}, interspersed=tool is Tool.VMBACKUPMANAGER)
    return translate(tool, parsed, accepted).argv


def test_every_option_a_table_names_exists_on_the_snapferry_command() -> None:
    # vmbackup's command lines become `backup`, or `copy` for a server-side copy (-origin alone)
    commands = {Tool.VMBACKUP: [("backup",), ("copy",)], Tool.VMRESTORE: [("restore",)],
                Tool.VMBACKUPMANAGER: [("manager",)]}
    for tool, rules in TABLES.items():
        for command in commands[tool]:
            takes = accepted(command)
            for r in rules:
                if command == ("copy",) and r.name.startswith("snapshot.tls"):
                    continue  # translate() leaves them out of a server-side copy, which calls no snapshot API
                if r.action in (Action.OPTION, Action.SWITCH, Action.NEGATABLE):
                    assert r.target in takes, (tool, command, r.name, r.target)


def test_docs_list_every_flag_as_the_tables_handle_it() -> None:
    text = DOC.read_text()
    section = text
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| `-")}
    for tool, rules in TABLES.items():
        for r in rules:
            assert f"`-{r.name}`" in rows, (tool, r.name)
            assert r.describe().replace("|", "\\|") in rows[f"`-{r.name}`"] or "same" in rows[f"`-{r.name}`"]


def test_vmbackup_modes() -> None:
    assert tr(Tool.VMBACKUP, "-storageDataPath=/d", "-snapshotName=S", "-dst=fs:///b")[2:] == [
        "backup", "--storage-data-path", "/d", "--snapshot-name", "S", "--dst", "fs:///b"]
    assert tr(Tool.VMBACKUP, "-snapshot.createURL=http://h/snapshot/create", "-dst=fs:///b", "-origin=fs:///o")[2:] == [
        "backup", "--storage-data-path", "victoria-metrics-data", "--snapshot-create-url", "http://h/snapshot/create",
        "--dst", "fs:///b", "--origin", "fs:///o"]
    assert tr(Tool.VMBACKUP, "-origin=fs:///o", "-dst=fs:///b")[2:] == ["copy", "--src", "fs:///o", "--dst", "fs:///b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-dst=fs:///b"], "`-snapshotName` or `-snapshot.createURL` must be provided"),
        (["-snapshotName=S", "-snapshot.createURL=http://h/c", "-dst=fs:///b"], "-snapshotName shouldn't be set"),
        (["-snapshotName=S"], "-dst is missing"),
        (["-snapshotName=S", "-dst=fs:///b", "-loggerLevel=DEBUG"], "unsupported -loggerLevel='DEBUG'"),
        (["-snapshotName=S", "-dst=fs:///b", "-httpListenAddr=8420"], "-httpListenAddr='8420' is not host:port"),
    ],
)
def test_vmbackup_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        tr(Tool.VMBACKUP, *argv)
    assert message in str(e.value) and e.value.exit_code == 2


def test_options_and_values() -> None:
    argv = tr(Tool.VMRESTORE, "-src=s3://b/p", "-storageDataPath=/d", "-maxBytesPerSecond=10MiB", "-concurrency=0x10",
              "-s3ForcePathStyle=false", "-skipBackupCompleteCheck", "-loggerLevel=WARN", "-s3StorageClass=GLACIER",
              "-pushmetrics.url=http://a,http://b")
    assert argv[:2] == ["--log-level", "warning"]
    joined = " ".join(argv)
    assert "--max-bytes-per-second 10485760" in joined and "--concurrency 16" in joined
    assert "--no-s3-force-path-style" in argv and "--skip-backup-complete-check" in argv
    assert "--s3-storage-class" not in argv  # a restore uploads nothing
    assert "--push-metrics-url http://a" in joined and "http://b" not in joined  # one URL, pushed at the end


def test_listen_addresses() -> None:
    def listen(*argv: str) -> ListenAddr | None:
        return translate(Tool.VMRESTORE, flag_set(Tool.VMRESTORE).parse(["-src=fs:///b", *argv], {})).listen

    assert listen() == ListenAddr("127.0.0.1", 8421, explicit=False)
    assert listen("-httpListenAddr=127.0.0.1:9000") == ListenAddr("127.0.0.1", 9000, explicit=True)
    assert listen("-httpListenAddr=:9000") == ListenAddr("0.0.0.0", 9000, explicit=True)
    assert listen("-httpListenAddr=[::1]:9000") == ListenAddr("::1", 9000, explicit=True)


def test_vmbackupmanager_subcommands_get_the_options_they_take() -> None:
    common = ["-dst=s3://b/n", "-storageDataPath=/d", "-snapshot.createURL=http://h/c", "-concurrency=2",
              "-customS3Endpoint=http://e", "-backupInterval=1h30m", "-keepLastDaily=3", "-disableHourly",
              "-httpListenAddr=127.0.0.1:9300,127.0.0.1:9301"]
    service = " ".join(tr(Tool.VMBACKUPMANAGER, *common))
    for part in ("manager --dst s3://b/n", "--backup-interval 5400", "--keep-last-daily 3", "--disable-hourly",
                 "--http-listen-addr 127.0.0.1:9300 ", "--snapshot-create-url http://h/c"):
        assert part in service + " "
    assert tr(Tool.VMBACKUPMANAGER, "restore", "get", *common)[2:] == [
        "manager", "restore", "get", "--storage-data-path", "/d"]
    lock = tr(Tool.VMBACKUPMANAGER, "backup", "lock", "daily/2026-11-27", *common)[2:]
    assert lock[:4] == ["manager", "backup", "lock", "daily/2026-11-27"]
    assert "--json" in lock and "--concurrency" not in lock and "--custom-s3-endpoint" in lock
    assert "--http-listen-addr 0.0.0.0:8300" in " ".join(tr(Tool.VMBACKUPMANAGER, "-httpListenAddr=:8300"))
    init = tr(Tool.VMBACKUPMANAGER, "restore", "-eula", "-storageDataPath=/d", "-concurrency=2")[2:]
    assert init == ["manager", "restore", "--storage-data-path", "/d", "--concurrency", "2"]


def test_the_operators_sidecar_without_listen_address_serves_every_interface_on_8300() -> None:
    # the operator passes no -httpListenAddr and probes /health at the pod's IP, port 8300;
    # the license flags it adds are accepted (snapferry needs no license)
    sidecar = tr(Tool.VMBACKUPMANAGER, "-dst=fs:///b/vmsingle-0/", "-eula", "-license=KEY",
                 "-licenseFile=/etc/vm/secrets/k/key", "-license.forceOffline=true",
                 "-licenseFile.reloadInterval=1h", "-snapshot.createURL=http://localhost:8428/snapshot/create",
                 "-storageDataPath=/victoria-metrics-data")
    assert sidecar[sidecar.index("--http-listen-addr") + 1] == "0.0.0.0:8300"
    assert "KEY" not in " ".join(sidecar)
    # the subcommands serve nothing; `snapferry manager` itself keeps loopback
    assert "--http-listen-addr" not in tr(Tool.VMBACKUPMANAGER, "restore", "-storageDataPath=/d")
    assert accepted(("manager",))  # the option exists on the native command
    from snapferry.cli.manager_cmd import DEFAULT_HTTP_LISTEN_ADDR
    assert DEFAULT_HTTP_LISTEN_ADDR == "127.0.0.1:8300"
    for bad in (["backup"], ["backup", "lock"], ["restore", "create"], ["backup", "list", "extra"], ["frob"]):
        with pytest.raises(UsageError):
            tr(Tool.VMBACKUPMANAGER, *bad)


def test_vmbackupmanager_client_subcommands_ask_the_api_with_the_server_credentials() -> None:
    argv = tr(Tool.VMBACKUPMANAGER, "backup", "list", "-apiURL=https://vm-0:8300", "-httpAuth.username=u",
              "-httpAuth.password=file:///etc/pw", "-tls", "-tlsCertFile=/c", "-tlsKeyFile=/k")
    assert argv[2:5] == ["manager", "backup", "list"]
    opts = argv[5:]
    assert opts[opts.index("--api-url") + 1] == "https://vm-0:8300"
    assert opts[opts.index("--api-username") + 1] == "u"
    assert opts[opts.index("--api-password") + 1] == "file:///etc/pw"
    assert "--tls" not in opts and "--http-auth-password" not in opts  # the server's, not the client's
    service = tr(Tool.VMBACKUPMANAGER, "-storageDataPath=/d", "-dst=fs:///b", "-snapshot.createURL=http://v/s",
                 "-httpAuth.username=u", "-httpAuth.password=p", "-tls", "-tlsCertFile=/c", "-tlsKeyFile=/k",
                 "-mtls", "-mtlsCAFile=/ca", "-metricsAuthKey=m", "-http.shutdownDelay=5s", "-apiURL=http://x")
    for pair in (["--http-auth-username", "u"], ["--http-auth-password", "p"], ["--tls-cert-file", "/c"],
                 ["--tls-key-file", "/k"], ["--mtls-ca-file", "/ca"], ["--metrics-auth-key", "m"],
                 ["--http-shutdown-delay", "5"]):
        assert service[service.index(pair[0]) + 1] == pair[1]
    assert "--tls" in service and "--mtls" in service and "--api-url" not in service
    assert redacted(service).count("<hidden>") == 2 and " p " not in redacted(service) + " "


def test_snapshot_tls_flags_go_where_the_snapshot_api_is_called() -> None:
    tls = ["-snapshot.tlsCAFile=/ca.pem", "-snapshot.tlsServerName=vm", "-snapshot.tlsInsecureSkipVerify"]
    made = tr(Tool.VMBACKUP, "-storageDataPath=/d", "-snapshot.createURL=https://vm/snapshot/create", "-dst=fs:///b",
              *tls)
    assert made[made.index("--snapshot-tls-ca-file") + 1] == "/ca.pem"
    assert made[made.index("--snapshot-tls-server-name") + 1] == "vm" and "--snapshot-tls-insecure-skip-verify" in made
    for no_api in (["-snapshotName=S"], ["-origin=fs:///a"]):  # no snapshot API call: nothing to protect
        made = tr(Tool.VMBACKUP, "-storageDataPath=/d", "-dst=fs:///b", *no_api, *tls)
        assert not [w for w in made if w.startswith("--snapshot-tls")], made
    manager = tr(Tool.VMBACKUPMANAGER, "-storageDataPath=/d", "-snapshot.createURL=https://vm/snapshot/create",
                 "-dst=fs:///b", *tls)
    assert manager[manager.index("--snapshot-tls-ca-file") + 1] == "/ca.pem"
