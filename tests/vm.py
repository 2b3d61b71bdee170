"""pytest plugin: a real VictoriaMetrics and its vmbackup/vmrestore, in two versions.

`VM_VERSIONS`: Debian 12's 1.79.5 (installed by apt, the legacy global `indexdb/`) and Debian
unstable's 1.145.0 (unpacked into `.cache/vm/1.145.0` by scripts/fetch-vm-sid.sh: an index per
month partition under `data/indexdb/YYYY_MM`, snapshots of symlinks). Every helper below takes
`version=` (default `OLD`); the fixture `vm_version` parametrises a test over both.

Fixtures:
- `vm_server`: a factory; `vm_server(storage_data_path)` starts `victoria-metrics`
  on 127.0.0.1 at a free port, waits for /health and returns a `VMServer`.
  Every server started is stopped by its PID at teardown.
- `vm_binaries`: the paths of the three binaries (fails loudly when one is missing).

Helpers (plain functions): `run_vmbackup`, `run_vmrestore`, `run_snapferry`,
`make_samples`, `prometheus_text`. Tests of other modules can import them.
A missing binary is a failure, never a skip: run scripts/setup.sh.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import die_with_parent, free_port, log_tail

__all__ = [
    "NEW",
    "OLD",
    "VM_VERSIONS",
    "Samples",
    "SeriesKey",
    "VMServer",
    "free_port",
    "make_samples",
    "merge_samples",
    "prometheus_text",
    "require_binary",
    "run_snapferry",
    "run_tool",
    "run_vmbackup",
    "run_vmrestore",
    "snapferry_command",
    "start_vm",
    "vm_binaries",
    "vm_server",
]

# A series is its sorted labels (with __name__); its samples are (timestamp ms, value).
SeriesKey = tuple[tuple[str, str], ...]
Samples = dict[SeriesKey, list[tuple[int, float]]]

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_TOOL_TIMEOUT = 300.0


OLD = "1.79.5"
NEW = "1.145.0"
VM_VERSIONS = (OLD, NEW)
_REPO = Path(__file__).resolve().parent.parent


def require_binary(name: str, version: str = OLD) -> str:
    """The path of a VictoriaMetrics binary of `version`; fails the test (never skips) when it is missing."""
    if version == OLD:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    else:
        cand = _REPO / ".cache" / "vm" / version / "usr" / "bin" / name
        path = str(cand) if os.access(cand, os.X_OK) else None
    if path is None:
        pytest.fail(
            f"the VictoriaMetrics {version} binary {name!r} is missing; run scripts/setup.sh "
            "(it installs Debian's victoria-metrics 1.79.5 and unpacks Debian unstable's 1.145.0 into .cache/vm)",
            pytrace=False,
        )
    return path


@dataclass
class VMServer:
    """A running victoria-metrics, started by this process."""

    storage_data_path: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"  # https: started with -tls; the fixture's own calls then skip verification

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def _context(self) -> ssl.SSLContext | None:
        return ssl._create_unverified_context() if self.scheme == "https" else None

    @property
    def snapshot_create_url(self) -> str:
        return f"{self.url}/snapshot/create"

    def snapshot_delete_url(self, name: str) -> str:
        return f"{self.url}/snapshot/delete?" + urllib.parse.urlencode({"snapshot": name})

    def snapshot_dir(self, name: str) -> Path:
        return self.storage_data_path / "snapshots" / name

    # --- HTTP -------------------------------------------------------------
    def request(self, path: str, data: bytes | None = None, timeout: float = 60.0) -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._context) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            raise AssertionError(f"victoria-metrics {path} answered HTTP {e.code}: {body}") from e

    def get_json(self, path: str) -> dict[str, object]:
        data = json.loads(self.request(path))
        assert isinstance(data, dict), data
        return data

    def import_prometheus(self, text: str) -> None:
        self.request("/api/v1/import/prometheus", text.encode())

    def ingest(self, samples: Samples) -> None:
        self.import_prometheus(prometheus_text(samples))

    def force_flush(self) -> None:
        self.request("/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> Samples:
        """All raw samples of the series matching `match`, sorted by timestamp."""
        q = urllib.parse.urlencode({"match[]": match})
        body = self.request(f"/api/v1/export?{q}").decode()
        out: Samples = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            key: SeriesKey = tuple(sorted((str(k), str(v)) for k, v in row["metric"].items()))
            got = out.setdefault(key, [])
            got.extend(zip((int(t) for t in row["timestamps"]), (float(v) for v in row["values"]), strict=True))
        for v in out.values():
            v.sort()
        return out

    def snapshot_create(self) -> str:
        data = self.get_json("/snapshot/create")
        assert data.get("status") == "ok", data
        name = data["snapshot"]
        assert isinstance(name, str)
        return name

    def snapshot_list(self) -> list[str]:
        data = self.get_json("/snapshot/list")
        assert data.get("status") == "ok", data
        snaps = data.get("snapshots") or []
        assert isinstance(snaps, list)
        return [str(s) for s in snaps]

    def snapshot_delete(self, name: str) -> None:
        q = urllib.parse.urlencode({"snapshot": name})
        data = self.get_json(f"/snapshot/delete?{q}")
        assert data.get("status") == "ok", data

    # --- lifecycle --------------------------------------------------------
    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2, context=self._context) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the process this fixture started (by its PID), gracefully, then by force."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=_STOP_TIMEOUT)


def start_vm(
    storage_data_path: Path, log_dir: Path, extra_args: Sequence[str] = (), version: str = OLD
) -> VMServer:
    """Start victoria-metrics of `version` on a free loopback port and wait for /health."""
    binary = require_binary("victoria-metrics", version)
    storage_data_path = Path(storage_data_path)
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        log_path = log_dir / f"victoria-metrics-{port}.log"
        cmd = [
            binary,
            f"-storageDataPath={storage_data_path}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
            *extra_args,
        ]
        with open(log_path, "wb") as log_file:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        tls = any(a in ("-tls", "-tls=true") for a in extra_args)
        server = VMServer(storage_data_path, port, proc, log_path, "https" if tls else "http")
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if server.healthy():
                return server
            time.sleep(0.05)
        server.stop()
        last_error = f"exit code {proc.returncode}; log:\n{log_tail(log_path)}"
    raise AssertionError(f"victoria-metrics did not start on {storage_data_path}: {last_error}")


@pytest.fixture(scope="session")
def vm_binaries() -> dict[str, str]:
    tools = ("victoria-metrics", "vmbackup", "vmrestore")
    return {f"{name}-{v}": require_binary(name, v) for v in VM_VERSIONS for name in tools}


@pytest.fixture(params=VM_VERSIONS)
def vm_version(request: pytest.FixtureRequest) -> str:
    """Each VictoriaMetrics version in turn (1.79.5, 1.145.0)."""
    return str(request.param)


@pytest.fixture
def vm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., VMServer]]:
    """A starter: `vm_server(storage_data_path, *extra_args, version=OLD) -> VMServer`; all are stopped at teardown."""
    started: list[VMServer] = []
    log_dir = tmp_path_factory.mktemp("vm-logs")

    def start(storage_data_path: Path, *extra_args: str, version: str = OLD) -> VMServer:
        server = start_vm(Path(storage_data_path), log_dir, extra_args, version)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


# --- the backup tools -------------------------------------------------------


# vmbackup/vmrestore (1.79.5: "no http server", 1.145.0: "no server") serve /metrics from a
# goroutine and stop that server when their work is done; work that takes a few milliseconds
# (a restore with nothing left to fetch) can end before the server is registered, and the stop
# then panics with this message and exit code 2, after the work itself has finished. Such a
# run is made again (the work is idempotent), at most twice more.
_EARLY_STOP_PANIC = re.compile(r"BUG: there is no (http )?server at")


def run_tool(cmd: Sequence[str], what: str = "") -> subprocess.CompletedProcess[str]:
    """Run a command line (a VictoriaMetrics tool's or snapferry's) that must succeed."""
    return _run(cmd, True, what or Path(cmd[0]).name)


def _run(cmd: Sequence[str], check: bool, what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=_TOOL_TIMEOUT, stdin=subprocess.DEVNULL, check=False
    )
    for _again in range(2):
        if not (proc.returncode == 2 and _EARLY_STOP_PANIC.search(proc.stderr)):
            break
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=_TOOL_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{what} failed with exit code {proc.returncode}: {' '.join(cmd)}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def run_vmbackup(
    storage_data_path: Path,
    snapshot_name: str,
    dst_dir: Path,
    *,
    origin_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    check: bool = True,
    version: str = OLD,
) -> subprocess.CompletedProcess[str]:
    """Real vmbackup of `<storage_data_path>/snapshots/<snapshot_name>` to fs://<dst_dir>."""
    cmd = [
        require_binary("vmbackup", version),
        f"-storageDataPath={Path(storage_data_path).absolute()}",
        f"-snapshotName={snapshot_name}",
        f"-dst=fs://{Path(dst_dir).absolute()}",
        f"-httpListenAddr=127.0.0.1:{free_port()}",  # its metrics server; the default :8420 may be busy
        "-loggerLevel=WARN",
        *extra_args,
    ]
    if origin_dir is not None:
        cmd.append(f"-origin=fs://{Path(origin_dir).absolute()}")
    return _run(cmd, check, "vmbackup")


def run_vmrestore(
    src_dir: Path,
    storage_data_path: Path,
    *,
    skip_backup_complete_check: bool = False,
    extra_args: Sequence[str] = (),
    check: bool = True,
    version: str = OLD,
) -> subprocess.CompletedProcess[str]:
    """Real vmrestore of the backup at fs://<src_dir> into `storage_data_path`."""
    cmd = [
        require_binary("vmrestore", version),
        f"-src=fs://{Path(src_dir).absolute()}",
        f"-storageDataPath={Path(storage_data_path).absolute()}",
        f"-httpListenAddr=127.0.0.1:{free_port()}",  # its metrics server; the default :8421 may be busy
        "-loggerLevel=WARN",
        *extra_args,
    ]
    if skip_backup_complete_check:
        cmd.append("-skipBackupCompleteCheck")
    return _run(cmd, check, "vmrestore")


def snapferry_command() -> list[str]:
    exe = Path(sys.executable).parent / "snapferry"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snapferry"]


def run_snapferry(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The snapferry CLI in a subprocess (as a user runs it)."""
    return _run([*snapferry_command(), *args], check, "snapferry")


# --- samples ----------------------------------------------------------------


def make_samples(
    *,
    seed: int,
    series: int = 4,
    per_series: int = 100,
    end_ms: int | None = None,
    step_ms: int = 15_000,
    metric: str = "snapferry_test",
    extra_labels: Mapping[str, str] | None = None,
) -> Samples:
    """Deterministic samples with recent timestamps (ending a minute ago by default).

    Values have three decimals, which VictoriaMetrics stores and exports exactly.
    """
    rng = random.Random(seed)
    end = end_ms if end_ms is not None else (int(time.time()) - 60) * 1000
    end -= end % step_ms
    out: Samples = {}
    for s in range(series):
        labels = {"__name__": metric, "instance": f"host-{s}", "seed": str(seed), **(extra_labels or {})}
        key: SeriesKey = tuple(sorted(labels.items()))
        out[key] = [
            (end - (per_series - 1 - i) * step_ms, round(rng.uniform(-1000, 1000), 3)) for i in range(per_series)
        ]
    return out


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(samples: Samples) -> str:
    """The Prometheus exposition text of samples, with millisecond timestamps."""
    lines = []
    for key, points in samples.items():
        labels = dict(key)
        name = labels.pop("__name__")
        lab = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        for ts, value in points:
            lines.append(f"{name}{{{lab}}} {value!r} {ts}")
    return "\n".join(lines) + "\n"


def merge_samples(*many: Samples) -> Samples:
    out: Samples = {}
    for s in many:
        for k, v in s.items():
            out.setdefault(k, []).extend(v)
    for v in out.values():
        v.sort()
    return out
