"""snapshot.py against a real tiny HTTP server (tests/tinyhttp.py) and a real victoria-metrics."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapferry import snapshot
from snapferry.errors import SnapferryError, UsageError
from tests.tinyhttp import Handler, Server, answer
from tests.vm import VMServer, run_snapferry

NAME = "20261125030000-17A3F0C2D1E50050"


def ok(body: dict[str, object]) -> Handler:
    return answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def test_create_returns_the_name_and_delete_goes_to_the_matching_url(
    server_factory: Callable[[Handler], Server],
) -> None:
    srv = server_factory(ok({"status": "ok", "snapshot": NAME}))
    url = f"http://127.0.0.1:{srv.port}/snapshot/create"
    assert snapshot.create(url) == NAME
    delete_url = snapshot.delete_url_for(url, NAME)
    assert delete_url == f"http://127.0.0.1:{srv.port}/snapshot/delete?snapshot={NAME}"
    snapshot.delete(delete_url)
    paths = [r.split(b" ")[1].decode() for r in srv.requests]
    assert paths == ["/snapshot/create", f"/snapshot/delete?snapshot={NAME}"]


@pytest.mark.parametrize(("handler", "words"), [
    (answer(500, b"boom"), "answered HTTP 500"),
    (answer(200, b"<html>not json</html>"), "did not answer JSON"),
    (ok({"status": "error", "msg": "no space"}), "could not create a snapshot"),
    (answer(200, b"[1, 2]"), "not a JSON object"),
])
def test_a_bad_answer_is_one_error_naming_the_url(
    server_factory: Callable[[Handler], Server], handler: Handler, words: str,
) -> None:
    srv = server_factory(handler)
    url = f"http://127.0.0.1:{srv.port}/snapshot/create"
    with pytest.raises(SnapferryError) as e:
        snapshot.create(url)
    assert words in str(e.value) and f"127.0.0.1:{srv.port}" in str(e.value), str(e.value)


def test_a_snapshot_name_that_is_a_path_is_refused(server_factory: Callable[[Handler], Server]) -> None:
    srv = server_factory(ok({"status": "ok", "snapshot": "../../etc"}))
    with pytest.raises(UsageError, match="is not a snapshot name"):
        snapshot.create(f"http://127.0.0.1:{srv.port}/snapshot/create")


def test_nothing_listening_and_a_bad_scheme() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(SnapferryError, match="cannot reach"):
            snapshot.create(f"http://127.0.0.1:{port}/snapshot/create")
    with pytest.raises(UsageError, match="not an http"):
        snapshot.create("ftp://127.0.0.1/snapshot/create")


def test_names_and_directories(tmp_path: Path) -> None:
    assert snapshot.snapshot_time(NAME) == datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)
    assert snapshot.snapshot_time("not-a-snapshot") is None
    assert snapshot.snapshot_time("20261399999999-AB") is None  # month 13
    (tmp_path / "snapshots" / NAME).mkdir(parents=True)
    assert snapshot.snapshot_dir(str(tmp_path), NAME) == str(tmp_path / "snapshots" / NAME)
    with pytest.raises(UsageError, match="does not exist"):
        snapshot.snapshot_dir(str(tmp_path), "20261125030000-00")
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(UsageError):
            snapshot.validate_name(bad)


def test_against_a_real_victoria_metrics(vm_server: Callable[..., VMServer], tmp_path: Path, vm_version: str) -> None:
    vm = vm_server(tmp_path / "vmdata", version=vm_version)
    vm.import_prometheus('up{job="x"} 1\n')
    vm.force_flush()
    name = snapshot.create(vm.snapshot_create_url)
    assert vm.snapshot_dir(name).is_dir()
    assert snapshot.snapshot_time(name) is not None
    snapshot.delete(snapshot.delete_url_for(vm.snapshot_create_url, name))
    assert not vm.snapshot_dir(name).exists()
    assert name not in vm.snapshot_list()


def test_an_auth_key_never_reaches_a_message(vm_server: Callable[..., VMServer], tmp_path: Path) -> None:
    """VictoriaMetrics' -snapshotAuthKey travels in the URL's query: errors show it as ***."""
    vm = vm_server(tmp_path / "vmdata", "-snapshotAuthKey=s3cret-key")
    bad = run_snapferry("backup", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                        f"{vm.url}/snapshot/create?authKey=wrong-s3cret", "--dst", f"fs://{tmp_path / 'b'}",
                        check=False)
    assert bad.returncode != 0 and "authKey=***" in bad.stderr, bad.stderr
    assert "wrong-s3cret" not in bad.stderr + bad.stdout
    ok = run_snapferry("backup", "--storage-data-path", str(vm.storage_data_path), "--snapshot-create-url",
                       f"{vm.url}/snapshot/create?authKey=s3cret-key", "--dst", f"fs://{tmp_path / 'b'}",
                       "--progress", "log", check=False)
    assert ok.returncode == 0, ok.stderr
    assert "s3cret-key" not in ok.stderr + ok.stdout
    assert vm.get_json("/snapshot/list?authKey=s3cret-key")["snapshots"] == []
