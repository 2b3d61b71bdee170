"""Every request of a run takes the same route: with HTTP_PROXY set, each request a backup, a
restore and a verify send to the object store passes a real forward proxy (Debian's tinyproxy,
which forwards one request per connection and marks each with a Via header); with NO_PROXY
naming the store, none does.

The store sits behind tests/faultproxy.py (no faults: it only looks), which records, for every
request that reaches the store, whether tinyproxy's Via header is on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faultproxy import FaultPlan, FaultProxy, Request
from tests.servers import SERVER_FIXTURES, ObjectServer, die_with_parent, free_port


class ForwardProxy:
    """tinyproxy on 127.0.0.1; `forwarded()` counts the requests its log says it forwarded."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        exe = shutil.which("tinyproxy")
        assert exe, "tinyproxy is missing; run scripts/setup.sh (Debian's tinyproxy-bin)"
        self.port = free_port()
        self.log = workdir / "tinyproxy.log"
        conf = workdir / "tinyproxy.conf"
        conf.write_text(f"Port {self.port}\nListen 127.0.0.1\nTimeout 300\nLogLevel Info\nMaxClients 400\n"
                        f"Allow 127.0.0.1\nLogFile \"{self.log}\"\n{extra}")
        self.proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "tinyproxy did not start"
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forwarded(self) -> Counter[str]:
        text = self.log.read_text() if self.log.exists() else ""
        return Counter(line.split("): ", 1)[1].split(" ", 1)[0] for line in text.splitlines()
                       if "]: Request (file descriptor" in line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def forward_proxy(tmp_path: Path) -> Iterator[ForwardProxy]:
    p = ForwardProxy(tmp_path)
    yield p
    p.stop()


class Looker:
    """What reached the store: each request's method, and whether it came through tinyproxy."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, req: Request) -> bool:
        self.seen.append((req.method, "tinyproxy" in (req.header("via") or "")))
        return False  # never a fault

    def methods(self, proxied: bool) -> Counter[str]:
        return Counter(m for m, p in self.seen if p is proxied)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SNAPFERRY_") and not k.lower().endswith("_proxy")}
    proc = subprocess.run([sys.executable, "-m", "snapferry", *args], capture_output=True, text=True, timeout=300,
                          env={**clean, **env}, check=False)
    assert proc.returncode == 0, (args, proc.stderr[-3000:])
    return proc


def backup_restore_verify(url: str, remote: list[str], env: dict[str, str], snapshot_tree: Path,
                          out: Path) -> None:
    run(["backup", "--src", str(snapshot_tree), "--dst", url, "--max-part-size", str(1024 * 1024), *remote], env)
    run(["restore", "--src", url, "--dst", str(out), *remote], env)
    run(["verify", "--src", url, "--read-data", *remote], env)


def routed_env(route: str, proxy: ForwardProxy, env: dict[str, str]) -> dict[str, str]:
    env = {**env, "HTTPS_PROXY": "http://127.0.0.1:1"}  # https is not used: a request routed by it would fail
    if route == "NO_PROXY":
        env.update(HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
    else:
        env[route] = proxy.url
    return env


def check_routes(route: str, looker: Looker, proxy: ForwardProxy) -> None:
    methods = {m for m, _ in looker.seen}
    assert "GET" in methods and methods & {"PUT", "POST"}, methods  # reads and writes (GCS writes with POST)
    if route == "NO_PROXY":
        assert looker.methods(True) == Counter() and proxy.forwarded() == Counter()
    else:
        # every request that reached the store came through the proxy, of every kind
        assert looker.methods(False) == Counter(), looker.methods(False)
        assert proxy.forwarded() == looker.methods(True)


ROUTES = ["HTTP_PROXY", "http_proxy", "NO_PROXY"]


@pytest.mark.parametrize("kind", ["s3-moto", "s3-seaweedfs"])
@pytest.mark.parametrize("route", ROUTES)
def test_every_s3_request_of_a_run_takes_the_proxy_or_none_does(
        kind: str, route: str, request: pytest.FixtureRequest, forward_proxy: ForwardProxy,
        snapshot_tree: Path, tmp_path: Path) -> None:
    server: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    looker = Looker()
    with FaultProxy(server.base_url, FaultPlan(rate=1.0, match=looker)) as front:
        opts, env = server.via(front.endpoint)
        remote = ["--custom-s3-endpoint", str(opts.custom_s3_endpoint), "--creds-file-path",
                  str(opts.creds_file_path), "--config-file-path", str(opts.config_file_path), "--progress", "off"]
        backup_restore_verify(f"s3://{server.new_bucket()}/proxied", remote, routed_env(route, forward_proxy, env),
                              snapshot_tree, tmp_path / "restored")
    check_routes(route, looker, forward_proxy)
    assert {"GET", "PUT", "HEAD"} <= {m for m, _ in looker.seen}  # the fast path's kinds, all of them


@pytest.mark.parametrize("kind", ["gs", "azblob"])
@pytest.mark.parametrize("route", ROUTES)
def test_gcs_and_azure_requests_take_the_proxy_or_none_do(
        kind: str, route: str, request: pytest.FixtureRequest, forward_proxy: ForwardProxy,
        snapshot_tree: Path, tmp_path: Path) -> None:
    server: ObjectServer = request.getfixturevalue(SERVER_FIXTURES[kind])
    looker = Looker()
    bucket = server.new_bucket()
    with FaultProxy(server.base_url, FaultPlan(rate=1.0, match=looker)) as front:
        _opts, env = server.via(front.endpoint)
        backup_restore_verify(f"{server.scheme}://{bucket}/proxied", ["--progress", "off"],
                              routed_env(route, forward_proxy, env), snapshot_tree, tmp_path / "restored")
    check_routes(route, looker, forward_proxy)




def test_https_requests_tunnel_through_the_proxy(moto_server: ObjectServer, snapshot_tree: Path,
                                                 tmp_path: Path) -> None:
    """An https:// endpoint (socat with a test CA's certificate before moto) that accepts
    connections only from 127.0.0.3, the address tinyproxy connects from (`Bind`): a request
    that went around the proxy (CONNECT, by HTTPS_PROXY) cannot reach the store at all."""
    from tests.tlsca import TestCA

    ca = TestCA(tmp_path / "ca")
    cert, key = ca.issue("s3")
    socat = shutil.which("socat")
    assert socat, "socat is missing; run scripts/setup.sh"
    port = free_port()
    front = subprocess.Popen(
        [socat, f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={cert},key={key},verify=0,"
                "range=127.0.0.3/32", f"TCP:{moto_server.base_url.removeprefix('http://')}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    proxy = ForwardProxy(tmp_path, extra="Bind 127.0.0.3\n")
    try:
        endpoint = f"https://127.0.0.1:{port}"
        opts, env = moto_server.via(endpoint)
        env = {**env, "AWS_CA_BUNDLE": str(ca.ca_file), "HTTP_PROXY": "http://127.0.0.1:1"}
        remote = ["--custom-s3-endpoint", endpoint, "--creds-file-path", str(opts.creds_file_path),
                  "--config-file-path", str(opts.config_file_path), "--progress", "off", "--retries", "1"]
        url = f"s3://{moto_server.new_bucket()}/tunnelled"
        clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        direct = subprocess.run([sys.executable, "-m", "snapferry", "backup", "--src", str(snapshot_tree), "--dst",
                                 url, *remote], capture_output=True, text=True, timeout=300,
                                env={**clean, **env, "NO_PROXY": "127.0.0.1", "HTTPS_PROXY": proxy.url},
                                check=False)
        assert direct.returncode != 0  # around the proxy, the store is out of reach: the setup discriminates
        backup_restore_verify(url, remote, {**env, "HTTPS_PROXY": proxy.url}, snapshot_tree, tmp_path / "restored")
        assert proxy.forwarded()["CONNECT"] >= 1
    finally:
        proxy.stop()
        front.terminate()
        front.wait(timeout=30)
