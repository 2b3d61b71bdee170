"""`--push-metrics-url`: a one-shot backup, restore or copy pushes its metrics when it ends.

A one-shot run lives too short to be scraped, so at its end (also when it failed)
it POSTs Prometheus text to a URL: a Pushgateway (`.../metrics/job/snapferry`) or
VictoriaMetrics' `/api/v1/import/prometheus`. The byte counters are the ones
vmbackup and vmrestore export (`vm_backups_uploaded_bytes_total`,
`vm_backups_downloaded_bytes_total`); the rest are snapferry's own. No sample
carries a timestamp: a Pushgateway refuses them and VictoriaMetrics stamps the
time it received the push.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .results import BackupResult, CopyResult, RestoreResult

# prometheus_client and urllib.request are imported by the functions that push: every
# backup and restore imports this module, few of them push (start-up time).
if TYPE_CHECKING:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("snapferry")

PUSH_TIMEOUT = 10.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Action(enum.Enum):
    BACKUP = "backup"
    RESTORE = "restore"
    COPY = "copy"


class RetryCounter(logging.Filter):
    """Counts the retries of whole parts and ranges while it is attached.

    retry.py logs one warning per retry (`_log_retry`); counting those records
    needs no counter threaded through every transfer loop. It filters the logger
    itself, so retries count whatever --log-level hides: while attached the logger
    lets warnings through to this filter, which drops what the level would have.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._shown_from = logging.NOTSET
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.module == "retry" and record.funcName == "_log_retry":
            with self._lock:
                self.count += 1
        return record.levelno >= self._shown_from

    @contextlib.contextmanager
    def attached(self, logger: logging.Logger = log) -> Iterator[RetryCounter]:
        level = logger.level
        self._shown_from = logger.getEffectiveLevel()
        logger.setLevel(min(self._shown_from, logging.WARNING))
        logger.addFilter(self)
        try:
            yield self
        finally:
            logger.removeFilter(self)
            logger.setLevel(level)


@dataclass(slots=True)
class RunRecord:
    """What one run did; `result` stays None when it failed."""

    action: Action
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    result: BackupResult | RestoreResult | CopyResult | None = None
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.result is not None


class _RunCollector:
    """The families of one finished run (prometheus_client's Collector protocol)."""

    def __init__(self, run: RunRecord) -> None:
        self.run = run

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        run = self.run
        a = [run.action.value]
        seconds = max(run.ended - run.started, 0.0)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["action"])
            g.add_metric(a, value)
            return g

        def counter(name: str, doc: str, value: float, labels: list[str] | None = None) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=["action"] if labels is None else labels)
            c.add_metric(a if labels is None else labels, value)
            return c

        yield gauge("snapferry_run_success", "1 when the run succeeded, 0 when it failed.", 1.0 if run.ok else 0.0)
        yield gauge("snapferry_run_started_at", "Unix time the run started.", run.started)
        yield gauge("snapferry_run_finished_at", "Unix time the run ended.", run.ended)
        yield gauge("snapferry_run_duration_seconds", "Seconds the run took.", seconds)
        yield counter("snapferry_retries", "Retries of whole parts and ranges after transient errors.",
                      float(run.retries))
        res = run.result
        if res is None:
            return  # a failed run's byte counts are unknown: better absent than a false zero
        moved, parts = _moved(res)
        yield gauge("snapferry_bytes_per_second", "Bytes moved per second over the whole run.",
                    moved / seconds if seconds > 0 else 0.0)
        yield counter("snapferry_parts", "Parts uploaded, downloaded or copied.", float(parts))
        yield gauge("snapferry_backup_size_bytes", "Size of the backup the run wrote or read.",
                    float(res.backup_bytes))
        if isinstance(res, RestoreResult):
            yield counter("vm_backups_downloaded_bytes", "Bytes downloaded (as vmrestore exports it).",
                          float(res.downloaded_bytes), labels=[])
        else:
            yield counter("vm_backups_uploaded_bytes", "Bytes uploaded or copied (as vmbackup exports it).",
                          float(moved), labels=[])


def _moved(res: BackupResult | RestoreResult | CopyResult) -> tuple[int, int]:
    if isinstance(res, BackupResult):
        return res.uploaded_bytes, res.parts_uploaded
    if isinstance(res, RestoreResult):
        return res.downloaded_bytes, res.parts_downloaded
    return res.copied_bytes, res.parts_copied


def render(run: RunRecord) -> bytes:
    """The run's metrics as Prometheus text, from a registry of its own."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(run))
    return generate_latest(registry)


def push(url: str, run: RunRecord, timeout: float = PUSH_TIMEOUT) -> None:
    """POST the run's metrics to `url`; a failed push is logged and never fails the run."""
    import urllib.error
    import urllib.request

    body = render(run)
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": CONTENT_TYPE})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read(300).decode(errors="replace").strip()
        log.warning("pushing metrics to %s failed: HTTP %d %s; check --push-metrics-url", url, e.code, detail)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        log.warning("pushing metrics to %s failed: %s; check --push-metrics-url", url, reason)


@contextlib.contextmanager
def pushed(url: str | None, action: Action) -> Iterator[RunRecord]:
    """Record the run in the block and push it at the end, also when the block raises.

    Set `record.result` inside the block once the action returned.
    """
    run = RunRecord(action)
    if not url:
        yield run
        return
    counter = RetryCounter()
    try:
        with counter.attached():
            yield run
    finally:
        run.ended = time.time()
        run.retries = counter.count
        push(url, run)
