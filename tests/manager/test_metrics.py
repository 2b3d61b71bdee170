"""The manager's metrics fed by a real Manager (real victoria-metrics snapshots, real fs:// backups),
read back through prometheus_client's parser and checked against what the runs did."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapferry.manager.http import ApiServer, parse_listen_addr
from snapferry.manager.layout import BackupType
from snapferry.manager.metrics import Metrics
from snapferry.manager.service import Manager, ManagerConfig
from tests.manager.helpers import Recorder
from tests.manager.test_http import MetricKey, parse_metrics
from tests.vm import VMServer, make_samples


class StepClock:
    """An injected clock: stands still until moved; sleeping jumps to the wake-up time."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def sleep_until(self, t: datetime, stop_event: threading.Event) -> bool:
        self.t = max(self.t, t)
        return not stop_event.is_set()


def closed_port_url() -> str:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/snapshot/create"


@pytest.fixture
def vm(vm_server: Callable[..., VMServer], tmp_path: Path) -> VMServer:
    server = vm_server(tmp_path / "vm-data")
    server.ingest(make_samples(seed=21, series=2, per_series=60))
    server.force_flush()
    return server


@pytest.fixture
def managers() -> Iterator[list[Manager]]:
    """Managers a test made, closed at its end."""
    made: list[Manager] = []
    yield made
    for m in made:
        m.close()


def manager_with_metrics(vm: VMServer, tmp_path: Path, made: list[Manager], clock: StepClock | None = None,
                         **config: object) -> tuple[Manager, Metrics]:
    cfg = ManagerConfig(storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url,
                        dst=f"fs://{tmp_path / 'backups'}", **config)  # type: ignore[arg-type]
    mgr = Manager(cfg, clock=clock, events=Metrics())
    made.append(mgr)
    server = ApiServer(mgr, parse_listen_addr("127.0.0.1:0"))  # binds the metrics; never started here
    return mgr, server.metrics


def scrape(metrics: Metrics) -> dict[MetricKey, float]:
    return parse_metrics(metrics.render().decode())


def per_type(m: dict[MetricKey, float], name: str) -> dict[str, float]:
    return {dict(labels)["type"]: v for (n, labels), v in m.items() if n == name}


def test_a_failed_run_then_a_good_one(vm: VMServer, tmp_path: Path, managers: list[Manager]) -> None:
    clock = StepClock(datetime(2026, 11, 27, 13, 5, tzinfo=UTC))
    mgr, metrics = manager_with_metrics(vm, tmp_path, managers, clock, disable_weekly=True, keep_last_daily=7)
    fresh = scrape(metrics)
    # the settings under vmbackupmanager's flag names, which its dashboard's tables read
    flags = {dict(lab)["name"]: (dict(lab)["value"], dict(lab)["is_set"]) for (n, lab) in fresh if n == "flag"}
    assert flags["disableWeekly"] == ("true", "true") and flags["disableDaily"] == ("false", "false")
    assert flags["keepLastDaily"] == ("7", "true") and flags["keepLastHourly"] == ("-1", "false")
    # before any run every backup type the manager makes is there at 0, as the alert rules expect
    assert per_type(fresh, "vm_backup_last_success_at") == {"latest": 0, "hourly": 0, "daily": 0, "monthly": 0}

    mgr.config.snapshot_create_url = closed_port_url()
    assert not mgr.run_once().ok
    m = scrape(metrics)
    assert per_type(m, "vm_backup_last_run_failed")["latest"] == 1
    assert per_type(m, "vm_backup_errors_total") == {"latest": 1, "hourly": 0, "daily": 0, "monthly": 0,
                                                      "restoreState": 0}
    assert per_type(m, "vm_backups_total")["latest"] == 1
    assert per_type(m, "vm_backup_last_success_at")["latest"] == 0
    assert m[("vm_backups_uploaded_bytes_total", ())] == 0

    clock.t += timedelta(minutes=30)
    mgr.config.snapshot_create_url = vm.snapshot_create_url
    result = mgr.run_once()
    assert result.ok, result
    m = scrape(metrics)
    assert per_type(m, "vm_backup_last_run_failed") == {"latest": 0, "hourly": 0, "daily": 0, "monthly": 0}
    assert per_type(m, "vm_backup_errors_total")["latest"] == 1  # a counter: the failure stays counted
    assert per_type(m, "vm_backups_total") == {"latest": 2, "hourly": 1, "daily": 1, "monthly": 1}
    # the success times are the manager's clock, so a simulated schedule reads right
    assert set(per_type(m, "vm_backup_last_success_at").values()) == {clock.t.timestamp()}
    assert per_type(m, "vm_backups_stored") == {"latest": 1, "hourly": 1, "daily": 1, "monthly": 1}
    sizes = {dict(lab)["backup"]: v for (n, lab), v in m.items() if n == "vm_backups_size_bytes"}
    assert set(sizes) == {"latest", "hourly/2026-11-27:13", "daily/2026-11-27", "monthly/2026-11"}
    uploaded = result.steps[0].bytes
    assert m[("vm_backups_uploaded_bytes_total", ())] == uploaded == sizes["latest"] > 0
    assert m[("snapferry_backups_copied_bytes_total", ())] == sum(s.bytes for s in result.steps[1:]) == 3 * uploaded
    rate = per_type(m, "snapferry_backup_bytes_per_second")["latest"]
    assert rate == pytest.approx(uploaded / result.steps[0].seconds)


def test_the_remote_is_listed_once_per_run_not_per_scrape(
    vm: VMServer, tmp_path: Path, managers: list[Manager]
) -> None:
    mgr, metrics = manager_with_metrics(vm, tmp_path, managers, keep_last_hourly=1)
    listings = []

    def counted() -> list:  # type: ignore[type-arg]
        listings.append(1)
        return mgr.list_backups()

    metrics.bind([BackupType.LATEST], in_flight=lambda: mgr.in_flight, list_backups=counted)
    scrape(metrics)
    scrape(metrics)
    assert len(listings) == 1  # the first scrape lists; nothing happened since
    assert mgr.run_once().ok
    for _ in range(3):
        m = scrape(metrics)
    assert len(listings) == 2
    assert sum(per_type(m, "vm_backups_stored").values()) == 5
    assert m[("snapferry_retention_runs_total", ())] == 1
    assert m[("vm_retention_duration_seconds_total", ())] > 0
    assert m[("snapferry_list_errors_total", ())] == 0


def test_an_unreadable_restore_mark_counts_as_a_restore_state_error(
    vm: VMServer, tmp_path: Path, managers: list[Manager]
) -> None:
    mgr, _ = manager_with_metrics(vm, tmp_path, managers)
    (vm.storage_data_path / "backup_restore.ignore").mkdir()  # a mark that cannot be read as a file
    server = ApiServer(mgr, parse_listen_addr("127.0.0.1:0"))
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + "/api/v1/restore", timeout=30)
        assert e.value.code == 500 and b"restore mark" in e.value.read()
        assert per_type(scrape(server.metrics), "vm_backup_errors_total")["restoreState"] == 1
    finally:
        server.stop()


def test_the_api_server_brings_metrics_when_the_manager_has_none(
    vm: VMServer, tmp_path: Path, managers: list[Manager]
) -> None:
    cfg = ManagerConfig(storage_data_path=str(vm.storage_data_path), snapshot_create_url=vm.snapshot_create_url,
                        dst=f"fs://{tmp_path / 'backups'}", disable_hourly=True, disable_weekly=True,
                        disable_monthly=True)
    plain = Manager(cfg)
    managers.append(plain)
    assert ApiServer(plain, parse_listen_addr("127.0.0.1:0")).metrics is plain.events
    recorder = Recorder()
    observed = Manager(cfg, events=recorder)
    managers.append(observed)
    metrics = ApiServer(observed, parse_listen_addr("127.0.0.1:0")).metrics
    assert observed.run_once().ok
    assert recorder.done == [("latest", True), ("daily", True)]  # the first observer still hears everything
    assert per_type(scrape(metrics), "vm_backups_total") == {"latest": 1, "daily": 1}
