"""/metrics while a drop-in run lasts, as vmbackup and vmrestore serve at -httpListenAddr.

The originals export `vm_backups_uploaded_bytes_total` (vmbackup) and
`vm_backups_downloaded_bytes_total` (vmrestore); snapferry adds its own per-action
byte counter, whether a run is in progress and when it started. The counts come
from the run's Progress through `progress.observed`, so they move while the run
does. prometheus-client with a registry of this run's own (never the global one),
served by snapferry.httpserve with the run's -httpAuth.*, -metricsAuthKey and -tls*
flags, as the manager's API is.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Receive, Scope, Send

from ..errors import SnapferryError
from ..httpsec import Security
from ..httpserve import HttpServer
from ..progress import observed
from .translate import Direction, ListenAddr

log = logging.getLogger("snapferry")


class RunMetrics(Collector):
    """The byte counts of one run; a prometheus Collector read at each scrape."""

    def __init__(self, tool: str, direction: Direction) -> None:
        self.tool = tool
        self.direction = direction
        self.started = time.time()
        self.running = True
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._shown: dict[str, int] = {}  # what a scrape saw: counters never go down

    def observe(self, what: str, n: int) -> None:
        with self._lock:
            self._done[what] = self._done.get(what, 0) + n

    def totals(self) -> dict[str, int]:
        with self._lock:
            for what, n in self._done.items():
                self._shown[what] = max(self._shown.get(what, 0), n)
            return dict(self._shown)

    def collect(self) -> Iterable[Any]:
        totals = self.totals()
        moved = sum(totals.values())
        up = CounterMetricFamily("vm_backups_uploaded_bytes", "Bytes uploaded to the remote storage")
        up.add_metric([], moved if self.direction is Direction.UPLOADED else 0)
        down = CounterMetricFamily("vm_backups_downloaded_bytes", "Bytes downloaded from the remote storage")
        down.add_metric([], moved if self.direction is Direction.DOWNLOADED else 0)
        own = CounterMetricFamily("snapferry_transferred_bytes", "Bytes moved by snapferry, per action",
                                  labels=["action"])
        for what, n in sorted(totals.items()):
            own.add_metric([what], n)
        running = GaugeMetricFamily("snapferry_run_in_progress", "1 while the drop-in run lasts",
                                    labels=["command"])
        running.add_metric([self.tool], 1 if self.running else 0)
        started = GaugeMetricFamily("snapferry_run_start_time_seconds", "When the run started (Unix time)",
                                    labels=["command"])
        started.add_metric([self.tool], self.started)
        return [up, down, own, running, started]


class _MetricsApp:
    """/metrics of one registry; every other path is a 404 (/health is answered in front)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        found = scope["path"] == "/metrics"
        body = generate_latest(self.registry) if found else b"only /metrics and /health are served here\n"
        ctype = CONTENT_TYPE_LATEST if found else "text/plain"
        await send({"type": "http.response.start", "status": 200 if found else 404,
                    "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def serving(metrics: RunMetrics, listen: ListenAddr | None, security: Security | None = None) -> Iterator[None]:
    """Serve /metrics at `listen` while the block runs, with the run's bytes observed.

    An explicit -httpListenAddr that cannot be bound fails the run before it starts (as
    the originals do); the default address only warns, so a busy default port never
    costs a backup.
    """
    server = None
    if listen is not None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics)
        where = f"{listen.host}:{listen.port}"
        try:
            server = HttpServer(_MetricsApp(registry), listen.host, listen.port, security or Security(),
                                what="/metrics")
        except SnapferryError as e:
            if listen.explicit:
                raise SnapferryError(f"cannot serve /metrics at -httpListenAddr={where}: free the port or "
                                     "choose another address") from e
            log.warning("not serving /metrics at %s (%s); pass -httpListenAddr to choose another address",
                        where, e.__cause__ or e)
        else:
            server.start()
            log.info("serving /metrics at %s/metrics while the run lasts", server.url)
    try:
        with observed(metrics.observe):
            yield
    finally:
        if server is not None:  # stopped first: no scrape sees the run over while it is being served
            server.stop()
        metrics.running = False
