"""Every flag of vmbackup, vmrestore and vmbackupmanager, and what snapferry does with it.

One `Rule` per flag: its Go type (for parsing exactly as the original does) and an
`Action`: pass the value to a snapferry option, pass a boolean as a switch, handle it
in translate.py (`SPECIAL`, the flags that choose the command), or accept and report
it once as ignored, with the reason. A flag in no table is unknown: an error, exit 2,
as the originals do. docs/dropin.md lists the same rules (tests/dropin/test_tables.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .goflags import FlagKind, FlagSpec, ValueType

K = FlagKind


class Tool(enum.Enum):
    VMBACKUP = "vmbackup"
    VMRESTORE = "vmrestore"
    VMBACKUPMANAGER = "vmbackupmanager"


class Action(enum.Enum):
    OPTION = "option"  # -flag=v -> --option v
    SWITCH = "switch"  # boolean -flag -> --option when true
    NEGATABLE = "negatable"  # boolean -> --option / --no-option
    SPECIAL = "special"  # handled by translate.py
    IGNORED = "ignored"  # accepted, reported once
    REFUSED = "refused"  # a protective flag snapferry has nothing to apply to: set, it stops the start (exit 2)


@dataclass(frozen=True)
class Rule:
    name: str
    kind: FlagKind
    action: Action
    target: str = ""  # the snapferry option, or what SPECIAL does, or why it is IGNORED
    default: ValueType | None = None

    @property
    def spec(self) -> FlagSpec:
        return FlagSpec(self.name, self.kind, self.default)

    def describe(self) -> str:
        if self.action is Action.IGNORED:
            return f"ignored: {self.target}"
        if self.action is Action.REFUSED:
            return f"refused (exit 2): {self.target}"
        if self.action is Action.NEGATABLE:
            return f"`{self.target}` / `--no-{self.target[2:]}`"
        if self.action in (Action.OPTION, Action.SWITCH):
            return f"`{self.target}`"
        return self.target


def _opt(name: str, kind: FlagKind, option: str) -> Rule:
    return Rule(name, kind, Action.OPTION, option)


def _switch(name: str, option: str) -> Rule:
    return Rule(name, K.BOOL, Action.SWITCH, option)


def _special(name: str, kind: FlagKind, what: str) -> Rule:
    return Rule(name, kind, Action.SPECIAL, what)


def _refused(names: str, kind: FlagKind, why: str) -> list[Rule]:
    return [Rule(n, kind, Action.REFUSED, why) for n in names.split()]


def _ignored(names: str, kind: FlagKind, why: str) -> list[Rule]:
    return [Rule(n, kind, Action.IGNORED, why) for n in names.split()]


_NO_LICENSE = "snapferry is open source and needs no license"
_SERVER = "the API and /metrics (the manager's, or a vmbackup/vmrestore run's): "
_NO_PAGE = "snapferry serves no such page, so there is nothing to protect; drop the flag"
_NO_AUTOCERT = "snapferry gets no certificates from Let's Encrypt; pass -tls with -tlsCertFile and -tlsKeyFile"
_NO_HTTP_TUNING = "the /metrics listener has no such setting"
_NO_LOG_TUNING = "snapferry logs plain lines, one per event, without rate limits"
_NO_CACHE = "snapferry keeps no caches of VictoriaMetrics' kind"
_NO_READ_TUNING = "snapferry chooses its own reads and writes (O_DIRECT, copy_file_range)"

# Flags every VictoriaMetrics binary has (lib/httpserver, lib/logger, lib/flagutil, ...).
COMMON: list[Rule] = [
    _special("version", K.BOOL, "prints snapferry's version and exits 0"),
    _special("loggerLevel", K.STRING, "`--log-level` (INFO, WARN, ERROR, FATAL, PANIC -> info, warning, error)"),
    _special("loggerFormat", K.STRING, "`default` plain lines, `json` one JSON object per log line (ts, level, "
             "caller, msg)"),
    _special("loggerOutput", K.STRING, "log lines go to `stderr` or `stdout`"),
    _special("envflag.enable", K.BOOL, "reads unset flags from environment variables, as VictoriaMetrics does"),
    _special("envflag.prefix", K.STRING, "the prefix of those environment variables"),
    _special("secret.flags", K.ARRAY, "the values of the flags it names are hidden in the log (a name of no "
             "flag is refused, exit 2)"),
    *_ignored("eula license.forceOffline", K.BOOL, _NO_LICENSE),
    *_ignored("license licenseFile", K.STRING, _NO_LICENSE),
    *_ignored("licenseFile.reloadInterval", K.DURATION, _NO_LICENSE),
    *_ignored("enableTCP6", K.BOOL, "the listen address is used as given; name an IPv6 address to listen on one"),
    *_ignored("filestream.disableFadvise fs.disableMmap fs.disableMincore", K.BOOL, _NO_READ_TUNING),
    *_ignored("fs.maxConcurrency", K.INT, _NO_READ_TUNING),
    _special("httpAuth.username", K.STRING, _SERVER + "HTTP basic auth on every path but /health "
             "(`--http-auth-username`)"),
    _special("httpAuth.password", K.STRING, _SERVER + "its password, or file:///path (`--http-auth-password`)"),
    _special("metricsAuthKey", K.STRING, _SERVER + "/metrics asks `?authKey=` (`--metrics-auth-key`)"),
    *_refused("flagsAuthKey pprofAuthKey", K.STRING, _NO_PAGE),
    *_ignored("http.disableCORS http.disableKeepAlive http.disableResponseCompression "
              "http.header.disableServerHostname metrics.exposeMetadata", K.BOOL, _NO_HTTP_TUNING),
    *_ignored("http.pathPrefix", K.STRING, _NO_HTTP_TUNING),
    _special("http.header.hsts", K.STRING, _SERVER + "a Strict-Transport-Security header (`--http-header-hsts`)"),
    _special("http.header.csp", K.STRING, _SERVER + "a Content-Security-Policy header (`--http-header-csp`)"),
    _special("http.header.frameOptions", K.STRING, _SERVER + "an X-Frame-Options header "
             "(`--http-header-frame-options`)"),
    *_ignored("http.connTimeout http.idleConnTimeout http.maxGracefulShutdownDuration", K.DURATION,
              _NO_HTTP_TUNING),
    _special("tls", K.BOOL, _SERVER + "HTTPS (`--tls`)"),
    _special("mtls", K.BOOL, _SERVER + "asks a client certificate (`--mtls`)"),
    _special("tlsCertFile", K.ARRAY, _SERVER + "its certificate, reloaded when the file changes (`--tls-cert-file`)"),
    _special("tlsKeyFile", K.ARRAY, _SERVER + "its key, reloaded when the file changes (`--tls-key-file`)"),
    _special("tlsMinVersion", K.ARRAY, _SERVER + "TLS10 .. TLS13 (`--tls-min-version`)"),
    _special("tlsCipherSuites", K.ARRAY, _SERVER + "Go's suite names (`--tls-cipher-suites`)"),
    _special("mtlsCAFile", K.ARRAY, _SERVER + "the CA of client certificates (`--mtls-ca-file`)"),
    *_refused("tlsAutocertHosts", K.ARRAY, _NO_AUTOCERT),
    *_refused("tlsAutocertCacheDir tlsAutocertEmail", K.STRING, _NO_AUTOCERT),
    *_ignored("internStringDisableCache", K.BOOL, _NO_CACHE),
    *_ignored("internStringMaxLen", K.INT, _NO_CACHE),
    *_ignored("internStringCacheExpireDuration", K.DURATION, _NO_CACHE),
    *_ignored("memory.allowedBytes", K.SIZE, "snapferry's memory is bounded by its own pool (`--max-inflight-bytes`)"),
    *_ignored("memory.allowedPercent", K.FLOAT, "snapferry's memory is bounded by its own pool"),
    *_ignored("loggerDisableTimestamps", K.BOOL, _NO_LOG_TUNING),
    *_ignored("loggerJSONFields loggerTimezone", K.STRING, _NO_LOG_TUNING),
    *_ignored("loggerErrorsPerSecondLimit loggerMaxArgLen loggerWarnsPerSecondLimit", K.INT, _NO_LOG_TUNING),
    *_ignored("pushmetrics.disableCompression", K.BOOL, "metrics are pushed once, at the end of the run"),
    *_ignored("pushmetrics.extraLabel pushmetrics.header", K.ARRAY, "metrics are pushed once, at the end of the run"),
    *_ignored("pushmetrics.interval", K.DURATION, "metrics are pushed once, at the end of the run"),
]

# Where the data is and how to reach the remote (lib/backup/actions' flags).
REMOTE: list[Rule] = [
    _opt("credsFilePath", K.STRING, "--creds-file-path"),
    _opt("configFilePath", K.STRING, "--config-file-path"),
    _opt("configProfile", K.STRING, "--config-profile"),
    _opt("customS3Endpoint", K.STRING, "--custom-s3-endpoint"),
    Rule("s3ForcePathStyle", K.BOOL, Action.NEGATABLE, "--s3-force-path-style", True),
    _switch("s3TLSInsecureSkipVerify", "--tls-insecure-skip-verify"),
]

# What only commands that delete objects in the remote use (backup, copy, the manager).
_DELETE_VERSIONS = _switch("deleteAllObjectVersions", "--delete-all-object-versions")

# What only uploads use: passed to backup, copy and the manager; a restore writes no object.
UPLOAD: list[Rule] = [
    _opt("s3StorageClass", K.STRING, "--s3-storage-class"),
    _opt("s3ObjectTags", K.STRING, "--s3-object-tags"),
    _opt("objectMetadata", K.STRING, "--object-metadata"),
    _opt("s3SSEKMSKeyId", K.STRING, "--s3-sse-kms-key-id"),
    _opt("s3SSEAlgorithm", K.STRING, "--s3-sse-algorithm"),
    _opt("s3ChecksumAlgorithm", K.STRING, "--s3-checksum-algorithm"),
    _opt("s3ACL", K.STRING, "--s3-acl"),
]

_RESTORE_WRITES_NOTHING = "a restore uploads no object, so this upload setting has nothing to apply to"

SNAPSHOT_TLS: list[Rule] = [
    _opt("snapshot.tlsCAFile", K.STRING, "--snapshot-tls-ca-file"),
    _opt("snapshot.tlsCertFile", K.STRING, "--snapshot-tls-cert-file"),
    _opt("snapshot.tlsKeyFile", K.STRING, "--snapshot-tls-key-file"),
    _opt("snapshot.tlsServerName", K.STRING, "--snapshot-tls-server-name"),
    _switch("snapshot.tlsInsecureSkipVerify", "--snapshot-tls-insecure-skip-verify"),
]

# snapferry's own flag (the originals have none like it): the key file of an encrypted backup.
# vmbackup and vmbackupmanager encrypt with it; vmrestore and vmbackup's copy decrypt with it.
_KEY = _special("snapferry.encryptionKeyFile", K.STRING,
                "snapferry only: `--encrypt --encryption-key-file` (backup, manager), `--encryption-key-file` "
                "(restore, copy); see docs/encryption.md")

# How much runs at once and how fast: every command moves bytes (backup, restore, the manager).
_TRANSFER = [_opt("concurrency", K.INT, "--concurrency"), _opt("maxBytesPerSecond", K.SIZE, "--max-bytes-per-second")]

# What every tool takes; TABLES puts it in front of each tool's own rules below.
_EVERY: list[Rule] = [*COMMON, *REMOTE, _KEY, *_TRANSFER]

# What writes into a backup takes: vmbackup and vmbackupmanager (a restore writes no object).
_WRITER: list[Rule] = [*UPLOAD, *SNAPSHOT_TLS, _DELETE_VERSIONS]

# The manager's backup periods, in the order of its flags (-disableHourly ... -keepLastMonthly).
_PERIODS = ("Hourly", "Daily", "Weekly", "Monthly")


def _one_run(port: int) -> list[Rule]:
    """What a single vmbackup or vmrestore run (not a service) takes: metrics pushed at its end,
    and a /metrics listener (`port` its default) that lasts as long as the run."""
    return [
        _special("pushmetrics.url", K.ARRAY, "`--push-metrics-url` (the first URL; more are reported as ignored)"),
        Rule("http.shutdownDelay", K.DURATION, Action.IGNORED, "the /metrics listener lasts the run and stops when "
             "it ends"),
        _special("httpListenAddr", K.STRING, f"serves /metrics while the run lasts (default 127.0.0.1:{port})"),
    ]


VMBACKUP: list[Rule] = [
    *_WRITER, *_one_run(8420),
    # snapferry only: without a key, an encrypted backup at -dst is replaced only when told to
    _switch("snapferry.replaceEncrypted", "--replace-encrypted"),
    _special("storageDataPath", K.STRING, "`backup --storage-data-path` (default `victoria-metrics-data`)"),
    _special("snapshotName", K.STRING, "`backup --snapshot-name`"),
    _special("snapshot.createURL", K.STRING, "`backup --snapshot-create-url` (the snapshot is deleted afterwards)"),
    _special("snapshot.deleteURL", K.STRING, "`backup --snapshot-delete-url`"),
    _special("dst", K.STRING, "`--dst`"),
    _special("origin", K.STRING, "`backup --origin`; with no snapshot flag, `copy --src` (server-side copy)"),
]

VMRESTORE: list[Rule] = [
    *_one_run(8421),
    *(Rule(r.name, r.kind, Action.IGNORED, _RESTORE_WRITES_NOTHING) for r in UPLOAD),
    *_ignored("deleteAllObjectVersions", K.BOOL, "a restore deletes no object of the backup"),
    _special("src", K.STRING, "`restore --src`"),
    _special("storageDataPath", K.STRING, "`restore --dst` (default `victoria-metrics-data`)"),
    _switch("skipBackupCompleteCheck", "--skip-backup-complete-check"),
    _switch("skipFilePreallocation", "--skip-file-preallocation"),
    # upstream PR 11186 (open): a partial restore of month partitions
    _opt("restorePartitions", K.STRING, "--partitions"),
    _opt("restoreSince", K.STRING, "--since"),
]

VMBACKUPMANAGER: list[Rule] = [
    *_WRITER,
    _opt("storageDataPath", K.STRING, "--storage-data-path"),
    _opt("snapshot.createURL", K.STRING, "--snapshot-create-url"),
    _opt("snapshot.deleteURL", K.STRING, "--snapshot-delete-url"),
    _opt("dst", K.STRING, "--dst"),
    _special("httpListenAddr", K.ARRAY, "`--http-listen-addr` (the first address; when not given, :8300 on every "
             "interface, as vmbackupmanager and the operator's probes expect)"),
    _special("backupInterval", K.DURATION, "`--backup-interval` (in seconds)"),
    _opt("backupScheduleTimezone", K.STRING, "--backup-schedule-timezone"),
    *(_switch(f"disable{p}", f"--disable-{p.lower()}") for p in _PERIODS),
    _switch("runOnStart", "--run-on-start"),
    _switch("disableScheduledBackups", "--disable-scheduled-backups"),
    *(_opt(f"keepLast{p}", K.INT, f"--keep-last-{p.lower()}") for p in _PERIODS),
    *_ignored("pushmetrics.url", K.ARRAY, "the manager serves /metrics at -httpListenAddr for scraping"),
    _special("apiURL", K.STRING, "`--api-url`: `backup list|lock|unlock` and `restore create|get|delete` ask the "
             "running manager there (with -httpAuth.* as the client's credentials); without it they read `-dst` "
             "and `-storageDataPath` directly"),
    _special("http.shutdownDelay", K.DURATION, "`--http-shutdown-delay`: on SIGTERM /health answers 503 this long, "
             "then the manager stops"),
    _switch("restore.disableSourceBackupValidation", "--disable-source-backup-validation"),
    _opt("backupTypeTagName", K.STRING, "--backup-type-tag-name"),
]

TABLES: dict[Tool, list[Rule]] = {
    tool: [*_EVERY, *own]
    for tool, own in ((Tool.VMBACKUP, VMBACKUP), (Tool.VMRESTORE, VMRESTORE), (Tool.VMBACKUPMANAGER, VMBACKUPMANAGER))
}


def rules(tool: Tool) -> dict[str, Rule]:
    return {r.name: r for r in TABLES[tool]}
