"""The manager's HTTP API through a real HTTP client (urllib), against the real server on a real
manager: real victoria-metrics snapshots, real backups on fs:// and SeaweedFS, real restores."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from snapferry.errors import UsageError
from snapferry.manager.http import ApiServer, parse_listen_addr, start_server
from snapferry.manager.layout import BackupType, parse_backup_name
from snapferry.manager.metrics import Metrics
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE, RESTORE_MARK_FILE
from snapferry.remotes import RemoteOptions
from tests.servers import S3Server
from tests.vm import OLD, VM_VERSIONS, Samples, VMServer, make_samples, run_snapferry, snapferry_command

BACKENDS = ["fs", "s3-seaweedfs"]
LIST_KEYS = {"name", "size_bytes", "size", "created_at", "locked", "state"}
MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def parse_metrics(text: str) -> dict[MetricKey, float]:
    out: dict[MetricKey, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@dataclass
class Backend:
    kind: str
    url: str
    options: RemoteOptions
    digest: Callable[[], dict[str, str]]  # every object under the root -> sha256 of its bytes
    cli_args: list[str]


@dataclass
class Api:
    url: str
    manager: Manager
    vm: VMServer
    storage: Path
    backend: Backend
    samples: Samples
    vm_version: str = OLD

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload, ctype = resp.status, resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), e.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            return status, json.loads(payload)
        return status, payload.decode()

    def metrics(self) -> dict[MetricKey, float]:
        status, text = self.call("GET", "/metrics")
        assert status == 200
        return parse_metrics(text)

    def wait_idle(self) -> None:
        for _ in range(6000):  # a bounded wait for the run on the manager's thread
            if not self.manager.in_flight:
                return
            time.sleep(0.05)
        raise AssertionError("the backup run did not finish")

    def run(self) -> None:
        status, body = self.call("POST", "/api/v1/backups")
        assert (status, body) == (201, {})
        self.wait_idle()
        assert self.manager.last_result is not None and self.manager.last_result.ok, self.manager.last_result

    def backups(self) -> dict[str, dict[str, Any]]:
        status, items = self.call("GET", "/api/v1/backups")
        assert status == 200 and isinstance(items, list)
        return {i["name"]: i for i in items}

    def state(self) -> tuple[dict[str, str], bytes | None]:
        """Everything a request could change: the remote's objects and the restore mark."""
        mark = self.storage / RESTORE_MARK_FILE
        return self.backend.digest(), mark.read_bytes() if mark.exists() else None


def _fs_digest(root: Path) -> Callable[[], dict[str, str]]:
    def digest() -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}
    return digest


def _s3_digest(server: S3Server, url: str) -> Callable[[], dict[str, str]]:
    bucket, _, prefix = url.split("://", 1)[1].partition("/")

    def digest() -> dict[str, str]:
        c = server.client()
        out = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", ()):
                body = c.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out[obj["Key"]] = hashlib.sha256(body).hexdigest()
        return out
    return digest


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "fs":
        root = tmp_path / "backups"
        return Backend("fs", f"fs://{root}", RemoteOptions(), _fs_digest(root), [])
    server: S3Server = request.getfixturevalue("seaweedfs")
    url, opts = server.new_remote("vm-node-1")
    assert opts.creds_file_path and opts.config_file_path
    args = ["--custom-s3-endpoint", server.endpoint, "--creds-file-path", opts.creds_file_path,
            "--config-file-path", opts.config_file_path]
    return Backend(request.param, url, opts, _s3_digest(server, url), args)


@pytest.fixture
def api(request: pytest.FixtureRequest, vm_server: Callable[..., VMServer], backend: Backend,
        tmp_path: Path) -> Iterator[Api]:
    """A manager with its API on a database of 1.79.5, or of the version a test passes
    (`@pytest.mark.parametrize("api", VM_VERSIONS, indirect=True)`)."""
    version = getattr(request, "param", OLD)
    storage = tmp_path / "vm-data"
    vm = vm_server(storage, version=version)
    samples = make_samples(seed=12, series=3, per_series=120)
    vm.ingest(samples)
    vm.force_flush()
    config = ManagerConfig(
        storage_data_path=str(storage), snapshot_create_url=vm.snapshot_create_url, dst=backend.url,
        remote_options=backend.options, disable_scheduled_backups=True, http_listen_addr="127.0.0.1:0",
    )
    manager = Manager(config, events=Metrics())
    server = ApiServer(manager, parse_listen_addr(config.http_listen_addr))
    server.start()
    try:
        yield Api(server.url, manager, vm, storage, backend, samples, version)
    finally:
        server.stop()
        manager.close()


def test_a_run_through_the_api_lists_every_backup_and_counts_it(api: Api) -> None:
    assert api.call("GET", "/health") == (200, "OK")
    before = time.time()
    api.run()
    after = time.time()
    listed = api.backups()
    result = api.manager.last_result
    assert result is not None
    local = result.started_at
    expected = {"latest", local.strftime("hourly/%Y-%m-%d:%H"), local.strftime("daily/%Y-%m-%d"),
                f"weekly/{local.isocalendar().year:04d}-{local.isocalendar().week:02d}",
                local.strftime("monthly/%Y-%m")}
    assert set(listed) == expected
    latest = listed["latest"]
    for item in listed.values():
        assert set(item) == LIST_KEYS
        assert item["state"] == "complete" and item["locked"] is False
        assert item["size_bytes"] == latest["size_bytes"] > 0
        datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))  # RFC 3339

    m = api.metrics()
    steps = {s.name.split("/")[0]: s for s in result.steps}
    assert set(steps) == {t.value for t in BackupType}
    for t, step in steps.items():
        lab = (("type", t),)
        assert m[("vm_backups_total", lab)] == 1
        assert m[("vm_backup_errors_total", lab)] == 0
        assert m[("vm_backup_last_run_failed", lab)] == 0
        assert before <= m[("vm_backup_last_success_at", lab)] <= after
        assert m[("vm_backup_duration_seconds_total", lab)] == pytest.approx(step.seconds)
        assert m[("vm_backups_stored", lab)] == 1
    assert m[("vm_backup_errors_total", (("type", "restoreState"),))] == 0
    assert m[("vm_backups_uploaded_bytes_total", ())] == steps["latest"].bytes == latest["size_bytes"]
    for name, item in listed.items():
        key = ("vm_backups_size_bytes", (("backup", name), ("type", name.split("/")[0])))
        assert m[key] == item["size_bytes"]
    created = datetime.fromisoformat(latest["created_at"].replace("Z", "+00:00")).timestamp()
    assert m[("vm_backup_last_created_at", (("type", "latest"),))] == pytest.approx(created)
    assert m[("vm_backup_in_flight", ())] == 0
    assert m[("vm_app_uptime_seconds", ())] > 0
    assert m[("snapferry_retries_total", ())] == 0


def test_a_second_trigger_while_a_run_goes_is_refused(api: Api) -> None:
    api.manager.config.max_bytes_per_second = 400  # a few KiB of snapshot: the run lasts seconds
    assert api.call("POST", "/api/v1/backups") == (201, {})
    status, body = api.call("POST", "/api/v1/backups")
    assert status == 400 and "in progress" in body["error"], body
    assert api.call("GET", "/health") == (200, "OK")  # the API answers while the run uploads
    assert api.metrics()[("vm_backup_in_flight", ())] == 1
    api.wait_idle()
    m = api.metrics()
    assert m[("vm_backup_in_flight", ())] == 0
    assert m[("vm_backups_total", (("type", "latest"),))] == 1  # the refused trigger started nothing


def test_a_locked_backup_survives_retention_until_unlocked(api: Api) -> None:
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    hourly = next(n for n in api.backups() if n.startswith("hourly/"))
    status, body = api.call("PUT", f"/api/v1/backups/{daily}", {"locked": True})
    assert status == 200 and body["name"] == daily and body["locked"] is True and body["state"] == "complete"
    assert any(k.endswith(f"{daily}/backup_locked.ignore") for k in api.backend.digest())
    assert api.backups()[daily]["locked"] is True

    api.manager.config.keep_last_hourly = 0
    api.manager.config.keep_last_daily = 0
    api.run()
    left = api.backups()
    assert daily in left and hourly not in left
    m = api.metrics()
    assert m[("snapferry_retention_deleted_backups_total", ())] == 1
    assert m[("vm_retention_last_run_failed", ())] == 0
    assert ("vm_backups_stored", (("type", "hourly"),)) not in m

    status, body = api.call("PUT", f"/api/v1/backups/{daily}", {"locked": False})
    assert status == 200 and body["locked"] is False
    api.run()
    assert daily not in api.backups()
    assert api.metrics()[("snapferry_retention_deleted_backups_total", ())] == 3  # hourly twice, daily once


def test_retention_keeps_the_backup_a_restore_mark_names(api: Api) -> None:
    """A backup marked for restore outlives keep-last 0 until the mark goes: the init
    container's restore must find it."""
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    hourly = next(n for n in api.backups() if n.startswith("hourly/"))
    api.manager.config.keep_last_hourly = 0
    api.manager.config.keep_last_daily = 0
    for mark in (daily, f"{api.backend.url}/{daily}"):  # a name, and the full URL of one of ours
        assert api.call("POST", "/api/v1/restore", {"backup": mark})[0] == 201
        api.run()
        assert api.manager.last_result is not None
        deleted = api.manager.last_result.deleted  # the hour may have turned since the first run
        assert deleted and all(n.startswith("hourly/") for n in deleted), deleted
        left = api.backups()
        assert hourly not in left and left[daily]["state"] == "complete"
    assert api.call("DELETE", "/api/v1/restore") == (200, {})
    api.run()
    assert api.manager.last_result is not None and daily in api.manager.last_result.deleted
    assert {n.split("/")[0] for n in api.backups()} == {"latest", "weekly", "monthly"}


@pytest.mark.parametrize("api", VM_VERSIONS, indirect=True)
def test_a_restore_mark_is_restored_by_manager_restore(api: Api, vm_server: Callable[..., VMServer]) -> None:
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    assert api.call("GET", "/api/v1/restore") == (200, {})
    assert api.call("POST", "/api/v1/restore", {"backup": daily}) == (201, {"backup": daily})
    # the mark holds the full URL (as vmbackupmanager's): the init container needs no --dst
    assert api.call("GET", "/api/v1/restore") == (200, {"backup": f"{api.backend.url}/{daily}"})
    assert (api.storage / RESTORE_MARK_FILE).read_text().strip() == f"{api.backend.url}/{daily}"
    # samples written after the backup must be gone once the backup is restored
    api.vm.ingest(make_samples(seed=13, series=2, per_series=50, metric="snapferry_after"))
    api.vm.force_flush()
    api.vm.stop()

    p = run_snapferry("manager", "restore", "--storage-data-path", str(api.storage), "--dst", api.backend.url,
                      "--progress", "off", "--json", *api.backend.cli_args)
    restored = json.loads(p.stdout)
    assert restored["src"].endswith(daily) and restored["deleted_bytes"] > 0  # the later parts went
    assert not (api.storage / RESTORE_MARK_FILE).exists()
    assert api.call("GET", "/api/v1/restore") == (200, {})
    vm2 = vm_server(api.storage, version=api.vm_version)
    assert vm2.export('{__name__="snapferry_test"}') == api.samples
    assert vm2.export('{__name__="snapferry_after"}') == {}

    # with no mark, manager restore is a no-op that exits 0
    p = run_snapferry("manager", "restore", "--storage-data-path", str(api.storage), "--dst", api.backend.url,
                      *api.backend.cli_args)
    assert "nothing to restore" in p.stderr


def test_a_restore_mark_is_deleted(api: Api) -> None:
    api.run()
    assert api.call("POST", "/api/v1/restore", {"backup": "latest"}) == (201, {"backup": "latest"})
    assert api.call("DELETE", "/api/v1/restore") == (200, {})
    assert not (api.storage / RESTORE_MARK_FILE).exists()
    assert api.call("DELETE", "/api/v1/restore") == (200, {})  # idempotent
    assert api.call("GET", "/api/v1/restore") == (200, {})


def test_a_restore_mark_takes_a_full_backup_url_as_vmbackupmanager_restore_create_posts(api: Api) -> None:
    """vmbackupmanager's `restore create <URL>` posts a full URL (another --dst's backup): accepted
    when that backup is complete; an incomplete one, or one inside the data path, is refused."""
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    url = f"{api.backend.url}/{daily}"
    assert api.call("POST", "/api/v1/restore", {"backup": url}) == (201, {"backup": url})
    assert api.call("GET", "/api/v1/restore") == (200, {"backup": url})
    assert (api.storage / RESTORE_MARK_FILE).read_text().strip() == url
    assert api.call("DELETE", "/api/v1/restore") == (200, {})

    inside = api.storage / "stash"
    inside.mkdir()
    (inside / BACKUP_COMPLETE_FILE).write_bytes(b"")
    api.manager.catalog.open(parse_backup_name(daily)).delete_file(BACKUP_COMPLETE_FILE)
    before = api.state()
    for bad, want in ((f"fs://{inside}", "overlaps the storage data path"), (url, "incomplete"),
                      (f"{api.backend.url}/daily/2001-01-01", "incomplete")):
        status, body = api.call("POST", "/api/v1/restore", {"backup": bad})
        assert status == 400 and want in body["error"], (bad, status, body)
    assert api.state() == before and before[1] is None


BAD_REQUESTS: list[tuple[str, str, Any, int]] = [
    # method, path, body (bytes are sent raw), expected status
    ("PUT", "/api/v1/backups/../../etc", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/%2e%2e/%2e%2e/etc", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/daily/../latest", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/other/2026-11-27", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/daily/2026-13-01", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/daily/2026-11-27/extra", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/latest", {"locked": True}, 400),
    ("PUT", "/api/v1/backups/daily/2001-01-01", {"locked": True}, 404),
    ("PUT", "/api/v1/backups/{daily}", b"not json", 400),
    ("PUT", "/api/v1/backups/{daily}", {"locked": "yes"}, 400),
    ("PUT", "/api/v1/backups/{daily}", {"locked": 1}, 400),
    ("PUT", "/api/v1/backups/{daily}", {"locked": True, "also": 1}, 400),
    ("PUT", "/api/v1/backups/{daily}", [True], 400),
    ("PUT", "/api/v1/backups/{daily}", b"", 400),
    ("PUT", "/api/v1/backups/{daily}", b'{"locked": true' + b" " * 70_000 + b"}", 413),
    ("POST", "/api/v1/restore", {"backup": "../../etc"}, 400),
    ("POST", "/api/v1/restore", {"backup": "daily/../latest"}, 400),
    ("POST", "/api/v1/restore", {"backup": "fs:///etc"}, 400),
    ("POST", "/api/v1/restore", {"backup": "daily/2001-01-01"}, 404),
    ("POST", "/api/v1/restore", {"backup": 5}, 400),
    ("POST", "/api/v1/restore", {}, 400),
    ("POST", "/api/v1/restore", b"{", 400),
    ("DELETE", "/api/v1/backups", None, 405),
    ("PUT", "/api/v1/restore", {"backup": "latest"}, 405),
    ("GET", "/api/v1/nothing", None, 404),
]


def test_bad_requests_get_a_json_4xx_and_change_nothing(api: Api) -> None:
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    before = api.state()
    assert before[1] is None and before[0]
    for method, path, body, want in BAD_REQUESTS:
        raw = body if isinstance(body, bytes) else None
        status, got = api.call(method, path.replace("{daily}", daily), None if raw is not None else body, raw)
        assert status == want, (method, path, body, status, got)
        assert isinstance(got, dict) and set(got) == {"error"} and got["error"], (method, path, got)
    # a chunked body has no Content-Length to refuse up front: it is cut off at the limit
    conn = http.client.HTTPConnection(api.url.removeprefix("http://"), timeout=60)
    try:
        chunks = (b'{"locked": true' if i == 0 else b" " * 8192 for i in range(20))
        conn.request("PUT", f"/api/v1/backups/{daily}", body=chunks, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and "error" in json.loads(resp.read())
    finally:
        conn.close()
    assert api.state() == before
    assert api.backups()[daily]["locked"] is False
    assert api.metrics()[("vm_backups_total", (("type", "latest"),))] == 1


def test_listen_addresses_default_to_loopback_and_a_busy_port_is_one_error(api: Api) -> None:
    assert parse_listen_addr(":8300") == parse_listen_addr("127.0.0.1:8300")
    assert str(parse_listen_addr("[::1]:8300")) == "[::1]:8300"
    for bad in ("8300", "host:port", "127.0.0.1:70000"):
        with pytest.raises(UsageError, match="--http-listen-addr"):
            parse_listen_addr(bad)
    assert api.url.startswith("http://127.0.0.1:")
    port = int(api.url.rsplit(":", 1)[1])
    with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
        start_server(api.manager, f"127.0.0.1:{port}")
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # the first server still answers
    assert api.call("GET", "/health") == (200, "OK")


def test_the_manager_command_serves_the_api_until_sigterm(
    vm_server: Callable[..., VMServer], backend: Backend, tmp_path: Path
) -> None:
    """`snapferry manager` as a user runs it: the service command starts the server through its hook."""
    storage = tmp_path / "vm-data"
    vm = vm_server(storage)
    vm.ingest(make_samples(seed=14, series=2, per_series=40))
    vm.force_flush()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now; the manager binds it below
    cmd = [*snapferry_command(), "manager", "--storage-data-path", str(storage), "--snapshot-create-url",
           vm.snapshot_create_url, "--dst", backend.url, "--http-listen-addr", f"127.0.0.1:{port}",
           "--disable-scheduled-backups", *backend.cli_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        client = Api(f"http://127.0.0.1:{port}", None, vm, storage, backend, {})  # type: ignore[arg-type]
        for _ in range(600):  # bounded: until the service listens
            if proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if client.call("GET", "/health") == (200, "OK"):
                    break
            time.sleep(0.05)
        assert client.call("POST", "/api/v1/backups") == (201, {})
        for _ in range(1200):
            m = client.metrics()
            if m[("vm_backup_in_flight", ())] == 0 and m[("vm_backups_total", (("type", "monthly"),))] == 1:
                break
            time.sleep(0.05)
        assert m[("vm_backup_last_run_failed", (("type", "latest"),))] == 0
        sized = {dict(lab)["backup"] for (k, lab) in m if k == "vm_backups_size_bytes"}
        assert set(client.backups()) == sized and len(sized) == 5  # latest and the four dated backups
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_a_restore_mark_can_name_partitions(api: Api) -> None:
    """A partial restore (docs/partial-restore.md): optional "partitions" and "since" in the
    POST body go into the mark after the backup's line; bad ones are refused, nothing written."""
    api.run()
    daily = next(n for n in api.backups() if n.startswith("daily/"))
    for bad in ({"backup": daily, "partitions": "2026-11"}, {"backup": daily, "since": "soon"},
                {"backup": daily, "partitions": 202611}, {"backup": daily, "other": "x"}):
        status, _ = api.call("POST", "/api/v1/restore", bad)
        assert status == 400, bad
        assert not (api.storage / RESTORE_MARK_FILE).exists()
    body = {"backup": daily, "partitions": "2026_11,2026_12", "since": "45d"}
    assert api.call("POST", "/api/v1/restore", {**body, "partitions": "2026_12, 2026_11"}) == (201, body)
    status, got = api.call("GET", "/api/v1/restore")
    assert status == 200 and got["backup"].endswith(daily)  # the mark holds the full URL
    assert {k: v for k, v in got.items() if k != "backup"} == {"partitions": "2026_11,2026_12", "since": "45d"}
    lines = (api.storage / RESTORE_MARK_FILE).read_text().splitlines()
    assert lines[0] == got["backup"] and lines[1:] == ["partitions=2026_11,2026_12", "since=45d"]
    assert api.call("DELETE", "/api/v1/restore") == (200, {})
