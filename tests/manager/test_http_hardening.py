"""The manager's HTTP server under abuse and misuse, as a user runs it (`snapferry manager` in a
subprocess): a connection flood with few descriptors, a slow request head, nested JSON,
the shutdown delay, secrets given as file:// that never show, and protective flags that
cannot work stopping the start."""

from __future__ import annotations

import contextlib
import json
import re
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapferry.manager.http import ApiServer, parse_listen_addr
from snapferry.manager.service import Manager, ManagerConfig
from tests.vm import run_snapferry, snapferry_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base(tmp_path: Path) -> list[str]:
    (tmp_path / "vm-data").mkdir(exist_ok=True)
    return ["--storage-data-path", str(tmp_path / "vm-data"), "--snapshot-create-url",
            "http://127.0.0.1:1/snapshot/create", "--dst", f"fs://{tmp_path / 'backups'}",
            "--disable-scheduled-backups"]


def get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


@contextlib.contextmanager
def manager(tmp_path: Path, *extra: str, nofile: int | None = None,
            argv: list[str] | None = None) -> Iterator[Running]:
    port = _free_port()
    log = tmp_path / f"manager-{port}.log"

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    cmd = argv or [*snapferry_command(), "manager", *_base(tmp_path), *extra]
    cmd = [a.replace("{PORT}", str(port)) for a in cmd]
    if argv is None:
        cmd += ["--http-listen-addr", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=limit)
    running = Running(proc, f"http://127.0.0.1:{port}", log)
    try:
        for _ in range(1200):  # bounded: until it listens
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                if get(running.url + "/health", timeout=5)[0] == 200:
                    break
            time.sleep(0.05)
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_connection_flood_with_few_descriptors_leaves_health_answering(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    flood: list[socket.socket] = []
    try:
        with manager(tmp_path, nofile=128) as m:
            port = int(m.url.rsplit(":", 1)[1])
            for _ in range(1000):  # ten times the server's descriptors, silent, held open
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                flood.append(s)
            assert get(m.url + "/health") == (200, b"OK")
            assert get(m.url + "/api/v1/restore")[0] == 200
            for s in flood:
                s.close()
            flood.clear()
            assert get(m.url + "/health") == (200, b"OK")
            assert m.stop() == 0
        text = m.log.read_text()
        # the bound keeps the server's descriptors below its limit: accept never fails (EMFILE)
        assert "Too many open files" not in text and "out of system resource" not in text, text[-3000:]
        assert "Traceback" not in text and len(text.splitlines()) < 20, text[-3000:]
    finally:
        for s in flood:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_accept_errors_when_descriptors_run_out_are_logged_once_with_a_count(tmp_path: Path) -> None:
    """16 descriptors: even the bound leaves too few, accept fails (EMFILE) again and again;
    the log gets a line per 10 s with the count of the others, and /health comes back."""
    flood: list[socket.socket] = []
    try:
        with manager(tmp_path, nofile=16) as m:
            port = int(m.url.rsplit(":", 1)[1])
            for _ in range(30):
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=60))
            for _ in range(1200):  # bounded: until the server ran out
                if "Too many open files" in m.log.read_text():
                    break
                time.sleep(0.05)
            for s in flood:
                s.close()
            flood.clear()
            assert get(m.url + "/health") == (200, b"OK")  # once the silent ones are gone
            assert m.stop() == 0
        text = m.log.read_text()
        lines = [line for line in text.splitlines() if "Too many open files" in line]
        assert lines and "Traceback" not in text, text[-3000:]
        counted = [int(n) for n in re.findall(r"(\d+) more (?:since the last such line|errors like the last)", text)]
        assert all("more since the last such line" in line for line in lines[1:]), text[-3000:]
        assert sum(counted) > 0, text[-3000:]  # more errors than lines: the rest were counted, not logged
    finally:
        for s in flood:
            s.close()


def test_garbage_requests_are_refused_and_logged_once_not_per_request(tmp_path: Path) -> None:
    with manager(tmp_path) as m:
        port = int(m.url.rsplit(":", 1)[1])
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"\x00\x01 not http\r\n\r\n")
                assert s.recv(64).startswith(b"HTTP/1.1 400")
        assert get(m.url + "/health") == (200, b"OK")
        assert m.stop() == 0
    text = m.log.read_text()
    assert text.count("Invalid HTTP request") == 1 and "Traceback" not in text, text[-2000:]


def test_requests_whose_bodies_never_arrive_neither_lock_out_health_nor_hang(tmp_path: Path) -> None:
    head = b"POST /api/v1/restore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    stuck: list[socket.socket] = []
    try:
        with manager(tmp_path, nofile=128) as m:
            port = int(m.url.rsplit(":", 1)[1])
            for _ in range(150):  # more than the bound (64 here), each a request in progress
                s = socket.create_connection(("127.0.0.1", port), timeout=60)
                s.sendall(head)
                stuck.append(s)
            assert get(m.url + "/health") == (200, b"OK")
            answer = b""
            while b"did not arrive" not in answer:  # the newest survived the bound: its body times out
                chunk = stuck[-1].recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408")
            assert m.stop() == 0
        assert "Traceback" not in m.log.read_text()
    finally:
        for s in stuck:
            s.close()


def test_a_request_head_that_never_ends_is_cut_off(tmp_path: Path) -> None:
    with manager(tmp_path) as m:
        port = int(m.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=120) as slow:
            slow.sendall(b"GET /api/v1/backups HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert slow.recv(1024) == b""  # closed by the server (header timeout), not answered
        assert get(m.url + "/health") == (200, b"OK")
        assert m.stop() == 0


def test_shutdown_delay_reports_draining_on_health_then_stops(tmp_path: Path) -> None:
    with manager(tmp_path, "--http-shutdown-delay", "10s") as m:
        m.proc.send_signal(signal.SIGTERM)
        for _ in range(600):
            status, body = get(m.url + "/health")
            if status != 200:
                break
            time.sleep(0.01)
        assert (status, body) == (503, b"draining before shutdown")
        assert m.proc.poll() is None  # still serving while it drains
        assert m.proc.wait(timeout=120) == 0
    assert "answers 503 for 10s" in m.log.read_text()


def test_a_sigterm_the_moment_the_api_listens_still_drains(tmp_path: Path) -> None:
    """An orchestrator may stop the pod as soon as the port opens: the shutdown delay holds all the
    same. (The API answers before the command holds the server it started; a signal then was a
    plain stop, and under load test_shutdown_delay_reports_draining_on_health_then_stops failed.)"""
    port = _free_port()
    log = tmp_path / "manager.log"
    cmd = [*snapferry_command(), "manager", *_base(tmp_path), "--http-shutdown-delay", "3s",
           "--http-listen-addr", f"127.0.0.1:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(120_000):  # bounded: until the port takes a connection, looked at every ms
            assert proc.poll() is None, log.read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        seen: tuple[int, bytes] = (200, b"OK")
        for _ in range(600):  # bounded: until the drain begins, or the manager stops listening
            try:
                seen = get(f"http://127.0.0.1:{port}/health")
            except OSError:
                seen = (0, b"no answer: the manager stopped listening")
            if seen[0] != 200:
                break
            time.sleep(0.01)
        assert seen == (503, b"draining before shutdown"), log.read_text()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "answers 503 for 3s" in log.read_text()


def test_file_secrets_never_show_in_logs_metrics_errors_or_help(tmp_path: Path) -> None:
    password, key = "pw-7f3a9c1e-never-shown", "key-0b5d2e88-never-shown"
    (tmp_path / "pw").write_text(password + "\n")
    (tmp_path / "key").write_text(key)
    with manager(tmp_path, "--http-auth-username", "admin", "--http-auth-password", f"file://{tmp_path / 'pw'}",
                 "--metrics-auth-key", f"file://{tmp_path / 'key'}") as m:
        seen = [get(m.url + "/metrics"), get(m.url + "/metrics?authKey=nope"), get(m.url + "/api/v1/backups")]
        assert [s for s, _ in seen] == [401, 401, 401]
        status, page = get(m.url + f"/metrics?authKey={key}")
        assert status == 200 and b"vm_backup_in_flight" in page
        seen.append((status, page))
        assert m.stop() == 0
    # the drop-in spelling with the secrets on the command line: its "running:" line hides them
    dropin = [*snapferry_command(), "vmbackupmanager", f"-storageDataPath={tmp_path / 'vm-data'}",
              "-snapshot.createURL=http://127.0.0.1:1/snapshot/create", f"-dst=fs://{tmp_path / 'b2'}",
              "-disableScheduledBackups", "-httpListenAddr=127.0.0.1:{PORT}", "-httpAuth.username=admin",
              f"-httpAuth.password={password}", f"-metricsAuthKey={key}"]
    with manager(tmp_path, argv=dropin) as d:
        status, page = get(d.url + f"/metrics?authKey={key}")
        assert status == 200 and b'flag{' in page
        seen.append((status, page))
        assert d.stop() == 0
    help_text = run_snapferry("manager", "--help").stdout + run_snapferry("vmbackupmanager", "-help").stdout
    outputs = [m.log.read_text(), d.log.read_text(), help_text, *(body.decode() for _, body in seen)]
    assert "<hidden>" in d.log.read_text()
    for text in outputs:
        assert password not in text and key not in text


@pytest.mark.parametrize(("args", "named"), [
    (["--tls"], "--tls-cert-file"),
    (["--tls", "--tls-cert-file", "/nonexistent/tls.crt", "--tls-key-file", "/nonexistent/tls.key"],
     "--tls-cert-file"),
    (["--tls", "--tls-cert-file", "CERT", "--tls-key-file", "KEY", "--tls-min-version", "TLS9"],
     "--tls-min-version"),
    (["--tls", "--tls-cert-file", "CERT", "--tls-key-file", "KEY", "--tls-cipher-suites", "TLS_NOPE"],
     "--tls-cipher-suites"),
    (["--tls-cert-file", "CERT", "--tls-key-file", "KEY"], "--tls "),
    (["--tls", "--tls-cert-file", "KEY", "--tls-key-file", "CERT"], "--tls-cert-file"),
    (["--mtls", "--mtls-ca-file", "CERT"], "--tls"),
    (["--http-auth-username", "admin", "--http-auth-password", "file:///nonexistent/pw"], "--http-auth-password"),
    (["--http-auth-password", "SECRET-VALUE"], "--http-auth-username"),
])
def test_a_protective_option_that_cannot_work_stops_the_start(tmp_path: Path, args: list[str], named: str) -> None:
    from tests.tlsca import TestCA

    cert, key = TestCA(tmp_path / "ca", "ca").issue("server")
    args = [{"CERT": str(cert), "KEY": str(key)}.get(a, a) for a in args]
    r = run_snapferry("manager", *_base(tmp_path), "--http-listen-addr", "127.0.0.1:0", *args, check=False)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and "Traceback" not in r.stderr and "SECRET-VALUE" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("tool", "flag", "named"), [
    ("vmbackup", "-flagsAuthKey=k", "-flagsAuthKey"),
    ("vmbackup", "-pprofAuthKey=k", "-pprofAuthKey"),
    ("vmrestore", "-tlsAutocertHosts=example.com", "-tlsAutocertHosts"),
    ("vmbackup", "-tls", "-tlsCertFile"),
    ("vmrestore", "-httpAuth.password=SECRET-VALUE", "-httpAuth.username"),
    ("vmbackupmanager", "-flagsAuthKey=k", "-flagsAuthKey"),
    ("vmbackupmanager", "-tls", "-tlsCertFile"),
    ("vmbackup", "-http.header.csp=default-src 'self'\r\nSet-Cookie: x=1", "-http.header.csp"),
])
def test_dropin_server_flags_work_or_stop_the_start(tmp_path: Path, tool: str, flag: str, named: str) -> None:
    common = {"vmbackup": ["-snapshotName=x", f"-dst=fs://{tmp_path / 'b'}"],
              "vmrestore": [f"-src=fs://{tmp_path / 'b'}", f"-storageDataPath={tmp_path / 'd'}"],
              "vmbackupmanager": [f"-storageDataPath={tmp_path / 'd'}", f"-dst=fs://{tmp_path / 'b'}",
                                  "-snapshot.createURL=http://127.0.0.1:1/snapshot/create",
                                  "-httpListenAddr=127.0.0.1:0"]}[tool]
    r = run_snapferry(tool, *common, flag, check=False)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and "Traceback" not in r.stderr and "SECRET-VALUE" not in r.stderr


@pytest.fixture
def plain_api(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "vm-data").mkdir()
    config = ManagerConfig(storage_data_path=str(tmp_path / "vm-data"),
                           snapshot_create_url="http://127.0.0.1:1/snapshot/create",
                           dst=f"fs://{tmp_path / 'backups'}", disable_scheduled_backups=True)
    mgr = Manager(config)
    server = ApiServer(mgr, parse_listen_addr("127.0.0.1:0"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        mgr.close()


@pytest.mark.parametrize("body", [
    b"[" * 30000 + b"]" * 30000,  # 60 000 bytes, under the 64 KiB limit: RecursionError in json
    b'{"backup": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    b"\xff\xfe", b"{", b"[]", b"null", b'{"backup": 1}', b'{"backup": "daily/2026-01-01", "x": 1}',
    b"1" * 6000, b'{"backup": "\\ud800"}',
])
def test_every_malformed_body_is_a_400(plain_api: str, body: bytes) -> None:
    for method, path in (("POST", "/api/v1/restore"), ("PUT", "/api/v1/backups/daily/2026-01-01")):
        req = urllib.request.Request(plain_api + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        assert status == 400, (method, path, payload[:200])
        assert "error" in json.loads(payload)
