"""The /metrics listener of a one-shot vmbackup/vmrestore run takes the originals' server
flags: -httpAuth.*, -metricsAuthKey, -tls* and -mtls*, from the command line to a real
listener on a real socket."""

from __future__ import annotations

import base64
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from snapferry.cli.dropin_cmd import accepted
from snapferry.dropin.metrics import RunMetrics, serving
from snapferry.dropin.run import flag_set
from snapferry.dropin.tables import Tool
from snapferry.dropin.translate import Direction, Translation, translate
from tests.tlsca import TestCA


def _plan(tool: Tool, *argv: str) -> Translation:
    parsed = flag_set(tool).parse(list(argv), {}, interspersed=False)
    return translate(tool, parsed, accepted)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, ctx: ssl.SSLContext | None = None, auth: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_run_serves_metrics_only_with_the_password_over_tls(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca", "ca")
    cert, key = ca.issue("server")
    (tmp_path / "pw").write_text("run-secret\n")
    port = _port()
    plan = _plan(Tool.VMBACKUP, "-snapshotName=s", f"-dst=fs://{tmp_path / 'b'}",
                 f"-httpListenAddr=127.0.0.1:{port}", "-httpAuth.username=scraper",
                 f"-httpAuth.password=file://{tmp_path / 'pw'}", "-tls", f"-tlsCertFile={cert}",
                 f"-tlsKeyFile={key}", "-tlsMinVersion=TLS13",
                 "-http.header.hsts=max-age=31536000", "-http.header.frameOptions=DENY")
    ctx = ssl.create_default_context(cafile=str(ca.ca_file))
    url = f"https://127.0.0.1:{port}"
    metrics = RunMetrics("vmbackup", Direction.UPLOADED)
    with serving(metrics, plan.listen, plan.security):
        assert _get(url + "/health", ctx) == (200, b"OK")
        assert _get(url + "/metrics", ctx)[0] == 401
        for path, auth in (("/health", None), ("/metrics", None), ("/metrics", "scraper:run-secret")):
            req = urllib.request.Request(url + path, headers={"Authorization": "Basic " + base64.b64encode(
                auth.encode()).decode()} if auth else {})
            try:
                with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
                    headers = r.headers
            except urllib.error.HTTPError as e:
                headers = e.headers
            assert headers["Strict-Transport-Security"] == "max-age=31536000" and headers["X-Frame-Options"] == "DENY"
        assert _get(url + "/metrics", ctx, "scraper:wrong")[0] == 401
        status, page = _get(url + "/metrics", ctx, "scraper:run-secret")
        assert status == 200 and b"vm_backups_uploaded_bytes_total" in page
        with pytest.raises(urllib.error.URLError):
            _get(url + "/health", ssl.create_default_context())  # the system's CAs do not know the test CA
        old = ssl.create_default_context(cafile=str(ca.ca_file))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            _get(url + "/health", old)  # under -tlsMinVersion


def test_a_run_serves_metrics_with_the_auth_key(tmp_path: Path) -> None:
    port = _port()
    plan = _plan(Tool.VMRESTORE, f"-src=fs://{tmp_path / 'b'}", f"-storageDataPath={tmp_path / 'd'}",
                 f"-httpListenAddr=127.0.0.1:{port}", "-metricsAuthKey=k3y")
    url = f"http://127.0.0.1:{port}/metrics"
    with serving(RunMetrics("vmrestore", Direction.DOWNLOADED), plan.listen, plan.security):
        assert _get(url)[0] == 401
        assert _get(url + "?authKey=other")[0] == 401
        status, page = _get(url + "?authKey=k3y")
        assert status == 200 and b"vm_backups_downloaded_bytes_total" in page
