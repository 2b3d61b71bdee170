"""The manager's /metrics: vmbackupmanager's metric names, so its dashboard and alert rules work.

Names and labels follow VictoriaMetrics' `dashboards/backupmanager.json` and
`deployment/docker/rules/alerts-vmbackupmanager.yml`: per-type series carry
`type` (latest, hourly, daily, weekly, monthly), `vm_backups_size_bytes` carries
`backup` and `type`, and the alerts join on `vm_app_uptime_seconds`. snapferry's
own series start with `snapferry_`.

The state lives in one object fed by the manager's events (the `ManagerEvents`
protocol) and is rendered by a collector into a registry of its own: no global
default registry, no `_created` series.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..pushmetrics import RetryCounter
from .catalog import BackupInfo
from .layout import BackupType

log = logging.getLogger("snapferry")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RESTORE_STATE = "restoreState"  # vmbackupmanager counts restore-mark failures under this type


def _version() -> str:
    try:
        return version("snapferry")
    except PackageNotFoundError:  # run from a source tree without an install
        return "unknown"


@dataclass(slots=True)
class _PerType:
    last_success_at: float = 0.0
    last_run_failed: float = 0.0
    errors: int = 0
    runs: int = 0
    duration: float = 0.0
    bytes_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class _Stored:
    name: str
    type: str
    size_bytes: int
    created_at: float


class Metrics:
    """Counters and gauges of one manager process; an observer of its events (`ManagerEvents`).

    Made before the Manager (it is the Manager's `events`), then bound to it by the
    API server: `in_flight` is read at scrape time; `list_backups` is called by the
    first scrape after a run ended (and the first one of all), since listing a
    remote on every scrape would cost requests for nothing.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = time.monotonic()
        self._start_time = time.time()
        self._in_flight: Callable[[], bool] = lambda: False
        self._list_backups: Callable[[], Sequence[BackupInfo]] = list
        self._types: dict[str, _PerType] = {BackupType.LATEST.value: _PerType()}
        self._restore_state_errors = 0
        self._uploaded_bytes = 0
        self._copied_bytes = 0
        self._retention = _PerType()
        self._retention_deleted = 0
        self._skipped_frozen: dict[str, int] = {}
        self._future: dict[str, int] = {}
        self._stored: list[_Stored] = []
        self._list_errors = 0
        self._flags: dict[str, str] = {}
        self._stale = True  # the listing behind vm_backups_size_bytes/_stored needs a refresh
        self.retries = RetryCounter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def bind(
        self,
        types: Iterable[BackupType],
        in_flight: Callable[[], bool],
        list_backups: Callable[[], Sequence[BackupInfo]],
        clock: Callable[[], float] | None = None,
        flags: Mapping[str, str] | None = None,
    ) -> None:
        """Attach to a manager: the types it makes (their series start at 0, as the alerts
        expect), its in-flight flag, its listing, its clock (injectable in tests) and its
        settings under vmbackupmanager's flag names (`flag{name, value, is_set}`, which the
        upstream dashboard's configuration tables read)."""
        with self._lock:
            if flags is not None:
                self._flags = dict(flags)
            for t in types:
                self._types.setdefault(t.value, _PerType())
            self._in_flight = in_flight
            self._list_backups = list_backups
            if clock is not None:
                self._clock = clock

    # --- ManagerEvents -----------------------------------------------------
    def run_started(self, type: BackupType) -> None:
        with self._lock:
            self._types.setdefault(type.value, _PerType())

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
        with self._lock:
            s = self._types.setdefault(type.value, _PerType())
            s.runs += 1
            s.duration += seconds
            s.last_run_failed = 0.0 if ok else 1.0
            if ok:
                s.last_success_at = self._clock()
                s.bytes_per_second = uploaded_bytes / seconds if seconds > 0 else 0.0
            else:
                s.errors += 1
            # latest/ is uploaded; the dated backups are (server-side) copies of it, which
            # vmbackup's counter leaves out, so they are counted apart
            if type is BackupType.LATEST:
                self._uploaded_bytes += uploaded_bytes
            else:
                self._copied_bytes += uploaded_bytes
            self._stale = True

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
        with self._lock:
            r = self._retention
            r.runs += 1
            r.duration += seconds
            r.last_run_failed = 0.0 if ok else 1.0
            if not ok:
                r.errors += 1
            self._retention_deleted += deleted
            self._stale = True

    # --- GuardEvents (manager/prune.py) -----------------------------------------
    def backup_skipped_frozen(self, type: BackupType) -> None:
        with self._lock:
            self._skipped_frozen[type.value] = self._skipped_frozen.get(type.value, 0) + 1

    def future_backups(self, names: list[str]) -> None:
        with self._lock:
            self._future = {}
            for n in names:
                self._future[_type_of(n)] = self._future.get(_type_of(n), 0) + 1

    # --- other inputs --------------------------------------------------------
    def restore_state_failed(self) -> None:
        """A restore mark could not be read or written (vmbackupmanager's type="restoreState")."""
        with self._lock:
            self._restore_state_errors += 1

    def refresh_backups(self) -> None:
        """List the remote once and keep the sizes and counts for the next scrapes."""
        try:
            infos = list(self._list_backups())
        except Exception as e:  # a failed listing must never break a run: counted and logged
            log.warning("listing the backups for /metrics failed: %s", e)
            with self._lock:
                self._list_errors += 1
            return
        stored = [_Stored(i.name, _type_of(i.name), i.size_bytes, _unix(i.created_at)) for i in infos]
        with self._lock:
            self._stored = stored
            self._stale = False

    def render(self) -> bytes:
        """The exposition text; lists the remote first when a run ended since the last listing
        (once per run, never while one is writing)."""
        with self._lock:
            stale, in_flight = self._stale, self._in_flight
        if stale and not in_flight():
            self.refresh_backups()
        return generate_latest(self.registry)

    # --- the collector -------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        with self._lock:
            types = {k: dataclasses.replace(v) for k, v in self._types.items()}
            r = self._retention
            retention_fields = (r.last_run_failed, r.errors, r.duration, r.runs)
            uploaded, copied, restore_errors = self._uploaded_bytes, self._copied_bytes, self._restore_state_errors
            stored, deleted, list_errors = list(self._stored), self._retention_deleted, self._list_errors
            in_flight = self._in_flight
            flags = sorted(self._flags.items())
            frozen, future = sorted(self._skipped_frozen.items()), sorted(self._future.items())
        yield from _per_type(types, restore_errors)
        t = _family
        yield t(GaugeMetricFamily, "vm_backup_in_flight", "1 while a backup run is going.",
                [((), 1.0 if in_flight() else 0.0)])
        yield t(CounterMetricFamily, "vm_backups_uploaded_bytes", "Bytes uploaded into latest/.", [((), uploaded)])
        yield t(CounterMetricFamily, "snapferry_backups_copied_bytes", "Bytes copied from latest/ into dated backups.",
                [((), copied)])
        size = GaugeMetricFamily("vm_backups_size_bytes", "Size of each stored backup.", labels=["backup", "type"])
        for s in stored:
            size.add_metric([s.name, s.type], float(s.size_bytes))
        yield size
        by_type: dict[str, list[_Stored]] = {}
        for s in stored:
            by_type.setdefault(s.type, []).append(s)
        yield t(GaugeMetricFamily, "vm_backups_stored", "Backups stored on the remote, by type.",
                [((k,), float(len(v))) for k, v in sorted(by_type.items())], ["type"])
        yield t(GaugeMetricFamily, "vm_backup_last_created_at", "Unix time the newest backup of a type was made.",
                [((k,), max(s.created_at for s in v)) for k, v in sorted(by_type.items())], ["type"])
        failed, errors, seconds, runs = retention_fields
        yield t(GaugeMetricFamily, "vm_retention_last_run_failed", "1 when the last retention pass failed.",
                [((), failed)])
        yield t(CounterMetricFamily, "vm_retention_errors", "Failed retention passes.", [((), float(errors))])
        yield t(CounterMetricFamily, "vm_retention_duration_seconds", "Seconds spent in retention.",
                [((), seconds)])
        yield t(CounterMetricFamily, "snapferry_retention_runs", "Retention passes.", [((), float(runs))])
        yield t(CounterMetricFamily, "snapferry_retention_deleted_backups", "Backups deleted by retention.",
                [((), float(deleted))])
        yield t(CounterMetricFamily, "snapferry_backups_skipped_frozen",
                "Copies into a dated backup skipped because it is locked or marked for restore.",
                [((k,), float(v)) for k, v in frozen], ["type"])
        yield t(GaugeMetricFamily, "snapferry_backups_dated_in_future",
                "Backups named after now at the last retention (a clock was ahead); kept, not counted.",
                [((k,), float(v)) for k, v in future], ["type"])
        yield t(CounterMetricFamily, "snapferry_retries", "Retries of whole parts and ranges after transient errors.",
                [((), float(self.retries.count))])
        yield t(CounterMetricFamily, "snapferry_list_errors", "Failed listings of the remote for these metrics.",
                [((), float(list_errors))])
        yield t(GaugeMetricFamily, "vm_app_uptime_seconds", "Seconds since the manager started.",
                [((), time.monotonic() - self._started)])
        yield t(GaugeMetricFamily, "vm_app_start_timestamp", "Unix time the manager started.",
                [((), self._start_time)])
        yield t(GaugeMetricFamily, "flag", "The manager's settings, by vmbackupmanager's flag names.",
                [((k, v, "true" if v != FLAG_DEFAULTS.get(k) else "false"), 1.0) for k, v in flags],
                ["name", "value", "is_set"])
        v = _version()
        yield t(GaugeMetricFamily, "vm_app_version", "The manager's version.",
                [((f"snapferry-{v}", v), 1.0)], ["version", "short_version"])


# vmbackupmanager's defaults, for is_set; the keys are its flag names
FLAG_DEFAULTS = {
    "disableHourly": "false", "disableDaily": "false", "disableWeekly": "false", "disableMonthly": "false",
    "keepLastHourly": "-1", "keepLastDaily": "-1", "keepLastWeekly": "-1", "keepLastMonthly": "-1",
    "backupInterval": "0s", "backupScheduleTimezone": "UTC", "runOnStart": "false",
    "disableScheduledBackups": "false", "maxBytesPerSecond": "0",
}


def config_flags(
    disabled: Mapping[BackupType, bool], keep: Mapping[BackupType, int], interval_seconds: float,
    timezone: str, run_on_start: bool, disable_scheduled: bool, concurrency: int, max_bytes_per_second: int,
) -> dict[str, str]:
    """A manager's settings as vmbackupmanager's flags with Go-style values."""
    def b(x: bool) -> str:
        return "true" if x else "false"

    out = {f"disable{t.value.capitalize()}": b(disabled.get(t, False)) for t in BackupType if t in disabled}
    out |= {f"keepLast{t.value.capitalize()}": str(n) for t, n in keep.items()}
    out |= {
        "backupInterval": f"{interval_seconds:g}s", "backupScheduleTimezone": timezone,
        "runOnStart": b(run_on_start), "disableScheduledBackups": b(disable_scheduled),
        "concurrency": str(concurrency), "maxBytesPerSecond": str(max_bytes_per_second),
    }
    return out


def _per_type(types: dict[str, _PerType], restore_errors: int) -> Iterable[Metric]:
    t = _family
    rows = sorted(types.items())
    yield t(GaugeMetricFamily, "vm_backup_last_success_at", "Unix time of the last successful backup of a type.",
            [((k,), v.last_success_at) for k, v in rows], ["type"])
    yield t(GaugeMetricFamily, "vm_backup_last_run_failed", "1 when the last backup of a type failed.",
            [((k,), v.last_run_failed) for k, v in rows], ["type"])
    errors = [((k,), float(v.errors)) for k, v in rows] + [((RESTORE_STATE,), float(restore_errors))]
    yield t(CounterMetricFamily, "vm_backup_errors", "Failed backups by type.", errors, ["type"])
    yield t(CounterMetricFamily, "vm_backups", "Backups made by type.", [((k,), float(v.runs)) for k, v in rows],
            ["type"])
    yield t(CounterMetricFamily, "vm_backup_duration_seconds", "Seconds spent making backups, by type.",
            [((k,), v.duration) for k, v in rows], ["type"])
    yield t(GaugeMetricFamily, "snapferry_backup_bytes_per_second",
            "Upload rate of the last successful backup of a type (0 for server-side copies).",
            [((k,), v.bytes_per_second) for k, v in rows], ["type"])


def _family(
    cls: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    rows: Sequence[tuple[Sequence[str], float]],
    labels: Sequence[str] = (),
) -> Metric:
    fam = cls(name, doc, labels=list(labels))
    for values, value in rows:
        fam.add_metric(list(values), value)
    return fam


def _type_of(name: str) -> str:
    return name.split("/", 1)[0]


def _unix(created_at: dt.datetime | str | float) -> float:
    if isinstance(created_at, dt.datetime):
        return created_at.timestamp()
    if isinstance(created_at, str):
        return dt.datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
    return float(created_at)
