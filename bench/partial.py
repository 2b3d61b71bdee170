"""Time to a serving database: the newest month of a 12-month backup against a full restore.

    .venv/bin/python -m bench.partial [--months 12] [--samples-per-month 100000]
        [--max-bytes-per-second 1000000] [--workdir DIR]

A real VictoriaMetrics 1.145.0 (index per month partition) gets `--months` months of
samples (backfilled, full-precision random values so they barely compress), a snapshot
and a snapferry backup to fs://. Then, in one run, each measured from the restore's start
until the restored database answers a query over the newest month with every series:
(1) `restore --partitions <newest>` + start, (2) a full restore + start. The restores
are capped at `--max-bytes-per-second`, a stand-in for the link to a remote store
(the data here is small; the cap keeps the ratio of bytes visible in the ratio of times).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VM = REPO / ".cache" / "vm" / "1.145.0" / "usr" / "bin" / "victoria-metrics"
SERIES = 50


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, log: Path) -> None:
        if not os.access(VM, os.X_OK):
            raise SystemExit(f"{VM} is missing; run scripts/fetch-vm-sid.sh")
        self.url = f"http://127.0.0.1:{_port()}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(VM), f"-storageDataPath={data}", f"-httpListenAddr={self.url[7:]}", "-retentionPeriod=100y",
                 "-loggerLevel=WARN"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def get(self, path: str, data: bytes | None = None) -> bytes:
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data=data), timeout=60) as r:
            return bytes(r.read())

    def wait_healthy(self) -> None:
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("victoria-metrics exited; see its log in the workdir")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.02)

    def series_at(self, ts: int) -> int:
        q = urllib.parse.urlencode({"query": "count(last_over_time(bench_partial[1d]))", "time": ts})
        result = json.loads(self.get(f"/api/v1/query?{q}"))["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def month_starts(n: int) -> list[dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    y, m = now.year, now.month
    out = []
    for _ in range(n):
        out.append(dt.datetime(y, m, 1, tzinfo=dt.UTC))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out  # newest first


def ingest(server: Server, starts: list[dt.datetime], per_month: int, rng: random.Random) -> None:
    now_s = int(time.time()) - 120
    for start in starts:
        first = int(start.timestamp())
        span = min(27 * 86400, now_s - first)  # the current month only up to now
        per_series = per_month // SERIES
        step = max(1, span // per_series)
        lines = [f'bench_partial{{series="{s}"}} {rng.random()!r} {(first + i * step) * 1000}'
                 for s in range(SERIES) for i in range(per_series)]
        server.get("/api/v1/import/prometheus", ("\n".join(lines) + "\n").encode())
    server.get("/internal/force_flush")


def snapferry(*args: str) -> dict[str, object]:
    exe = Path(sys.executable).parent / "snapferry"
    out = subprocess.run([str(exe), *args, "--json", "--progress=off"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert isinstance(data, dict)
    return data


def time_to_serving(backup: str, dst: Path, log: Path, probe_ts: int, cap: int, extra: list[str]) -> tuple[float, int]:
    t0 = time.monotonic()
    res = snapferry("restore", f"--src={backup}", f"--dst={dst}", f"--max-bytes-per-second={cap}", *extra)
    server = Server(dst, log)
    try:
        server.wait_healthy()
        while server.series_at(probe_ts) < SERIES:
            time.sleep(0.02)
        seconds = time.monotonic() - t0
    finally:
        server.stop()
    return seconds, int(str(res["downloaded_bytes"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--samples-per-month", type=int, default=100_000)
    ap.add_argument("--max-bytes-per-second", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-partial-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "victoria-metrics.log"
    starts = month_starts(a.months)
    server = Server(work / "db", log)
    try:
        server.wait_healthy()
        ingest(server, starts, a.samples_per_month, random.Random(7))
        time.sleep(2)  # the flushed rows reach their parts before the snapshot
        snap = json.loads(server.get("/snapshot/create"))["snapshot"]
    finally:
        server.stop()
    backup = f"fs://{work / 'backup'}"
    snapferry("backup", f"--src={work / 'db' / 'snapshots' / snap}", f"--dst={backup}")
    newest = starts[0].strftime("%Y_%m")
    probe = int(time.time()) - 300
    part_s, part_b = time_to_serving(backup, work / "partial", log, probe, a.max_bytes_per_second,
                                     [f"--partitions={newest}"])
    full_s, full_b = time_to_serving(backup, work / "full", log, probe, a.max_bytes_per_second, [])
    print(json.dumps({
        "months": a.months, "samples_per_month": a.samples_per_month, "cap_bytes_per_second": a.max_bytes_per_second,
        "newest": newest, "partial_seconds": round(part_s, 2), "partial_bytes": part_b,
        "full_seconds": round(full_s, 2), "full_bytes": full_b, "ratio": round(full_s / part_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
