"""The manager's API as an attacker meets it: basic auth, TLS with a private CA, mTLS and a
certificate rotated on disk, against the real server on real sockets, over a real manager
(real victoria-metrics snapshots, real backups on fs://)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from snapferry.httpsec import Security, TlsSettings, read_secret
from snapferry.manager.http import ApiServer, parse_listen_addr
from snapferry.manager.metrics import Metrics
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import RESTORE_MARK_FILE
from tests.dropin.helpers import run_script
from tests.tlsca import TestCA
from tests.vm import VMServer, make_samples, run_snapferry

USER, PASSWORD = "admin", "s3cret-Pa55word"


@dataclass
class Secured:
    url: str
    manager: Manager
    storage: Path
    root: Path
    ca: TestCA
    server_cert: Path
    certs: Path
    password_file: Path

    def context(self, ca: Path | None = None, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca or self.ca.ca_file))
        if client:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        return ctx

    def call(self, method: str, path: str, body: Any = None, auth: tuple[str, str] | None = (USER, PASSWORD),
             ctx: ssl.SSLContext | None = None) -> tuple[int, Any, dict[str, str]]:
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60, context=ctx or self.context()) as resp:
                status, payload, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            status, payload, hdrs = e.code, e.read(), dict(e.headers)
        try:
            return status, json.loads(payload), hdrs
        except ValueError:
            return status, payload.decode(), hdrs

    def state(self) -> tuple[dict[str, str], bytes | None]:
        mark = self.storage / RESTORE_MARK_FILE
        digest = {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in sorted(self.root.rglob("*")) if p.is_file()}
        return digest, mark.read_bytes() if mark.exists() else None


def _start(tmp_path: Path, vm_server: Callable[..., VMServer], mtls: bool) -> Iterator[Secured]:
    storage, root = tmp_path / "vm-data", tmp_path / "backups"
    vm = vm_server(storage)
    vm.ingest(make_samples(seed=21, series=2, per_series=60))
    vm.force_flush()
    ca = TestCA(tmp_path / "ca", "test-ca")
    certs = ca.dir
    cert, key = ca.issue("server")
    password_file = tmp_path / "secret" / "password"
    password_file.parent.mkdir()
    password_file.write_text(PASSWORD + "\n")
    config = ManagerConfig(storage_data_path=str(storage), snapshot_create_url=vm.snapshot_create_url,
                           dst=f"fs://{root}", disable_scheduled_backups=True, http_listen_addr="127.0.0.1:0")
    manager = Manager(config, events=Metrics())
    assert manager.run_once().ok
    security = Security(USER, read_secret(f"file://{password_file}", "-httpAuth.password"), None,
                        TlsSettings(str(cert), str(key), mtls=mtls, mtls_ca_file=str(ca.ca_file) if mtls else ""))
    server = ApiServer(manager, parse_listen_addr(config.http_listen_addr), security)
    server.start()
    try:
        yield Secured(server.url, manager, storage, root, ca, cert, certs, password_file)
    finally:
        server.stop()
        manager.close()


@pytest.fixture
def secured(tmp_path: Path, vm_server: Callable[..., VMServer]) -> Iterator[Secured]:
    yield from _start(tmp_path, vm_server, mtls=False)


def test_no_password_a_wrong_one_and_the_right_one(secured: Secured) -> None:
    assert secured.url.startswith("https://127.0.0.1:")
    assert secured.call("GET", "/health", auth=None)[:2] == (200, "OK")  # probes need no credentials
    status, body, headers = secured.call("GET", "/api/v1/backups", auth=None)
    assert status == 401 and "basic auth" in body["error"] and headers["www-authenticate"].startswith("Basic")
    denied = secured.call("GET", "/api/v1/backups", auth=(USER, "nope"))[:2]
    assert denied[0] == 401
    # every wrong password, whatever its length or how much of the right one it shares, gets the same
    # answer: the comparison is of whole values (hmac.compare_digest), never a prefix
    wrong = ["", "s", PASSWORD[:-1], PASSWORD + "x", PASSWORD.upper(), "x" * 200, PASSWORD + "\n"]
    assert {json.dumps(secured.call("GET", "/api/v1/backups", auth=(USER, w))[:2]) for w in wrong} == \
        {json.dumps(denied)}
    assert secured.call("GET", "/api/v1/backups", auth=("Admin", PASSWORD))[:2] == denied
    assert secured.call("GET", "/metrics", auth=None)[0] == 401
    status, items, _ = secured.call("GET", "/api/v1/backups")
    assert status == 200 and {i["name"] for i in items} >= {"latest"}
    assert secured.call("GET", "/metrics")[0] == 200
    status, one, _ = secured.call("GET", "/api/v1/backups/latest")
    assert status == 200 and one["name"] == "latest" and one["state"] == "complete"
    assert secured.call("GET", "/api/v1/backups/daily/1999-01-01")[0] == 404
    assert secured.call("GET", "/api/v1/backups/../etc")[0] == 400


def test_each_mutating_endpoint_without_credentials_changes_nothing(secured: Secured) -> None:
    daily = next(i["name"] for i in secured.call("GET", "/api/v1/backups")[1] if i["name"].startswith("daily/"))
    runs = secured.manager.last_result
    before = secured.state()
    for auth in (None, (USER, "wrong"), ("", "")):
        assert secured.call("POST", "/api/v1/backups", auth=auth)[0] == 401
        assert secured.call("PUT", f"/api/v1/backups/{daily}", {"locked": True}, auth=auth)[0] == 401
        assert secured.call("POST", "/api/v1/restore", {"backup": daily}, auth=auth)[0] == 401
        assert secured.call("DELETE", "/api/v1/restore", auth=auth)[0] == 401
    assert not secured.manager.in_flight and secured.manager.last_result is runs
    assert secured.state() == before
    # a mark made with credentials is not deleted without them
    assert secured.call("POST", "/api/v1/restore", {"backup": daily})[0] == 201
    marked = secured.state()
    assert secured.call("DELETE", "/api/v1/restore", auth=None)[0] == 401
    assert secured.state() == marked and marked[1] is not None


def test_a_client_without_the_ca_does_not_trust_the_server(secured: Secured, tmp_path: Path) -> None:
    with pytest.raises(urllib.error.URLError) as caught:
        secured.call("GET", "/health", ctx=ssl.create_default_context())
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)
    other = TestCA(tmp_path / "other", "other-ca")
    with pytest.raises(urllib.error.URLError):
        secured.call("GET", "/health", ctx=secured.context(ca=other.ca_file))
    # plain HTTP on the TLS port gets no API answer
    host, port = secured.url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"GET /api/v1/backups HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"HTTP/1.1 200" not in s.recv(4096)


def test_a_tls_handshake_that_never_starts_is_cut_off(secured: Secured) -> None:
    host, port = secured.url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=40) as silent:
        assert silent.recv(1024) == b""  # closed after the header timeout, not asyncio's 60 s
    assert secured.call("GET", "/health", auth=None)[:2] == (200, "OK")


def test_a_certificate_rotated_on_disk_is_served_to_new_handshakes(secured: Secured) -> None:
    host, port = secured.url.removeprefix("https://").rsplit(":", 1)

    def served_serial() -> int:
        with socket.create_connection((host, int(port)), timeout=30) as raw, \
                secured.context().wrap_socket(raw, server_hostname=host) as s:
            der = s.getpeercert(binary_form=True)
            assert der is not None
            return int(x509.load_der_x509_certificate(der).serial_number)

    first = served_serial()
    keep_alive = secured.context().wrap_socket(socket.create_connection((host, int(port)), timeout=30),
                                               server_hostname=host)
    cert, _key = secured.ca.issue("server")  # the same paths, new files: cert-manager's rotation
    rotated = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    assert cert == secured.server_cert and rotated != first
    assert served_serial() == rotated
    assert secured.call("GET", "/api/v1/backups")[0] == 200
    keep_alive.close()  # the connection made before the rotation lived through it
    # a broken pair on disk (a key that is not the certificate's) keeps the last good one
    secured.server_cert.write_bytes(secured.ca.ca_file.read_bytes())
    assert served_serial() == rotated


@pytest.fixture
def mutual(tmp_path: Path, vm_server: Callable[..., VMServer]) -> Iterator[Secured]:
    yield from _start(tmp_path, vm_server, mtls=True)


def test_mtls_refuses_no_client_certificate_and_one_of_another_ca(mutual: Secured, tmp_path: Path) -> None:
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        mutual.call("GET", "/health")
    other = TestCA(tmp_path / "other", "other-ca").issue("intruder", client=True)
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        mutual.call("GET", "/health", ctx=mutual.context(client=other))
    good = mutual.ca.issue("operator", client=True)
    ctx = mutual.context(client=good)
    assert mutual.call("GET", "/health", ctx=ctx)[:2] == (200, "OK")
    assert mutual.call("GET", "/api/v1/backups", auth=None, ctx=ctx)[0] == 401  # a certificate is not a password
    assert mutual.call("GET", "/api/v1/backups", ctx=ctx)[0] == 200
    # the client CA rotated on disk (same path): new handshakes trust the new CA only
    server_ca = tmp_path / "server-ca.pem"  # the server's own certificate stays from the first CA
    server_ca.write_bytes(mutual.ca.ca_file.read_bytes())
    new_ca = TestCA(mutual.ca.dir, "test-ca")
    assert new_ca.ca_file == mutual.ca.ca_file
    renewed = new_ca.issue("operator2", client=True)
    fresh = mutual.context(ca=server_ca, client=renewed)
    assert mutual.call("GET", "/health", ctx=fresh)[:2] == (200, "OK")
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        mutual.call("GET", "/health", ctx=mutual.context(ca=server_ca, client=good))


def test_the_cli_asks_the_running_manager_without_the_volume_or_the_bucket(secured: Secured) -> None:
    """`snapferry manager backup|restore ... --api-url`: no --dst, no --storage-data-path."""
    api = ["--api-url", secured.url, "--api-ca-file", str(secured.ca.ca_file)]
    creds = ["--api-username", USER, "--api-password", f"file://{secured.password_file}"]
    untrusted = run_snapferry("manager", "backup", "list", "--api-url", secured.url, *creds, check=False)
    assert untrusted.returncode == 2 and "--api-ca-file" in untrusted.stderr
    assert "Traceback" not in untrusted.stderr
    anonymous = run_snapferry("manager", "backup", "list", *api, check=False)
    assert anonymous.returncode == 2 and "--api-username" in anonymous.stderr
    wrong = run_snapferry("manager", "backup", "list", *api, "--api-username", USER, "--api-password", "x",
                          check=False)
    assert wrong.returncode == 2
    listed = json.loads(run_snapferry("manager", "backup", "list", "--json", *api, *creds).stdout)
    daily = next(i["name"] for i in listed if i["name"].startswith("daily/"))
    locked = json.loads(run_snapferry("manager", "backup", "lock", daily, "--json", *api, *creds).stdout)
    assert locked["locked"] is True and secured.call("GET", f"/api/v1/backups/{daily}")[1]["locked"] is True
    run_snapferry("manager", "backup", "unlock", daily, *api, *creds)
    assert secured.call("GET", f"/api/v1/backups/{daily}")[1]["locked"] is False
    assert run_snapferry("manager", "restore", "get", *api, *creds).stdout.strip() == "{}"
    run_snapferry("manager", "restore", "create", daily, *api, *creds)
    marked = json.loads(run_snapferry("manager", "restore", "get", *api, *creds).stdout)
    assert marked == {"backup": f"fs://{secured.root}/{daily}"}  # a mark holds the backup's full URL
    run_snapferry("manager", "restore", "delete", *api, *creds)
    assert secured.state()[1] is None
    missing = run_snapferry("manager", "restore", "create", "daily/1999-01-01", *api, *creds, check=False)
    assert missing.returncode == 2 and "daily/1999-01-01" in missing.stderr
    assert PASSWORD not in missing.stderr + wrong.stderr + anonymous.stderr + untrusted.stderr
    # the drop-in, with the server's own flags as the client's credentials and the CA from the environment
    dropin = run_script("vmbackupmanager", ["backup", "list", f"-apiURL={secured.url}", f"-httpAuth.username={USER}",
                                            f"-httpAuth.password=file://{secured.password_file}"],
                        env={"SNAPFERRY_API_CA_FILE": str(secured.ca.ca_file)})
    assert json.loads(dropin.stdout) == json.loads(run_snapferry("manager", "backup", "list", "--json", *api,
                                                                 *creds).stdout)
