"""SeaweedFS (`weed mini`) and the latency/bandwidth proxy, started and stopped by PID.

free_port and weed_mini_argv are shared with tests/servers.py (the tests import them
from here; bench imports nothing from tests), so both start SeaweedFS the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BUCKET = "bench"
ACCESS_KEY = "bench"
SECRET_KEY = "benchsecret"


def free_port() -> int:
    """A port free on 127.0.0.1 right now (a server started later may still lose it to another)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WEED_SERVICES = ("master", "volume", "filer", "s3", "admin")


def weed_mini_argv(weed: str | Path, data_dir: Path, volume_max: int, bucket: str | None = None) -> tuple[
        list[str], dict[str, int]]:
    """`weed mini` on loopback with a fresh free port for every service and its gRPC twin
    (others may run one on the defaults, whose gRPC ports are port+10000); returns the
    command and the ports by service. Volumes are sparse files: a high volume.max is free."""
    ports = {k: free_port() for k in WEED_SERVICES}
    argv = [
        str(weed), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
        "-webdav=false", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-volume.max={volume_max}", *([f"-bucket={bucket}"] if bucket else []),
    ]
    for k, p in ports.items():
        argv += [f"-{k}.port={p}", f"-{k}.port.grpc={free_port()}"]
    return argv, ports


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s; see {log}")


def _stop(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Weed:
    """`weed mini` on loopback with its own ports (others may run one on the defaults)."""

    def __init__(self, workdir: Path, weed_bin: Path) -> None:
        self.dir = workdir / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "logs" / "weed.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv, ports = weed_mini_argv(weed_bin, self.dir, 300, BUCKET)
        self.s3_port = ports["s3"]
        self.master_port = ports["master"]
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        _wait_http(self.endpoint + "/", 90, self.proc, self.log)
        # The bucket is created asynchronously after the S3 port opens.
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client().head_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
        )

    def delete_prefix(self, prefix: str) -> int:
        c = self.client()
        n = 0
        pag = c.get_paginator("list_objects_v2")
        for page in pag.paginate(Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(keys), 1000):
                c.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
                n += len(keys[i : i + 1000])
        return n

    def count_prefix(self, prefix: str) -> int:
        c = self.client()
        n = 0
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix.rstrip("/") + "/"):
            n += len(page.get("Contents", []))
        return n

    def vacuum(self) -> None:
        """Reclaim deleted space now, not in the middle of a timed run."""
        url = f"http://127.0.0.1:{self.master_port}/vol/vacuum?garbageThreshold=0.01"
        try:
            with urllib.request.urlopen(url, timeout=300) as r:
                r.read()
        except Exception as e:  # best effort
            print(f"[weed] vacuum failed: {e}", flush=True)

    def stop(self) -> None:
        _stop(self.proc)


class Proxy:
    """bench/proxy.py in its own process (so its CPU is measured apart from the tools)."""

    def __init__(self, workdir: Path, target_port: int, delay_ms: float, rate_mbps: float) -> None:
        self.port = free_port()
        self.log = workdir / "logs" / "proxy.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "bench.proxy", "--listen-port", str(self.port), "--target-port",
            str(target_port), "--delay-ms", str(delay_ms), "--rate-mbps", str(rate_mbps),
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        _wait_http(self.endpoint + "/", 30, self.proc, self.log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        _stop(self.proc, 5)


def write_creds(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    return path


def s3_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
    )
    return env
