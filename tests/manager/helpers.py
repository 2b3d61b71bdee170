"""Shared by the manager tests: a real VictoriaMetrics fed per simulated run, and checks
that a backup restores (with that version's vmrestore and with snapferry) to exactly the
samples ingested before its run, served by that version's victoria-metrics."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import snapferry
from snapferry.manager.layout import BackupType
from snapferry.remotes import RemoteOptions
from tests.servers import S3Server
from tests.test_interop_vm_s3 import _vm_s3_flags
from tests.vm import OLD, Samples, VMServer, free_port, make_samples, merge_samples, require_binary

StartVM = Callable[..., VMServer]
MINUTE = timedelta(minutes=1)


class Feed:
    """Samples ingested into a running VM, one batch per simulated moment."""

    def __init__(self, vm: VMServer, series: int = 4, per_batch: int = 20) -> None:
        self.vm = vm
        self.series = series
        self.per_batch = per_batch
        self.batches: list[tuple[datetime, Samples]] = []

    def ingest_before(self, t: datetime) -> None:
        """A batch stamped up to a minute before `t`, flushed so a snapshot at `t` holds it."""
        batch = make_samples(seed=len(self.batches) + 1, series=self.series, per_series=self.per_batch,
                             end_ms=int((t - MINUTE).timestamp() * 1000))
        self.vm.ingest(batch)
        self.vm.force_flush()
        self.batches.append((t, batch))

    def up_to(self, run_at: datetime) -> Samples:
        """Everything ingested before the run at `run_at`."""
        return merge_samples(*(b for t, b in self.batches if t <= run_at))


def restored_samples(start_vm: StartVM, data: Path, version: str = OLD) -> Samples:
    vm = start_vm(data, version=version)
    try:
        return vm.export('{__name__="snapferry_test"}')
    finally:
        vm.stop()


def check_restores(url: str, opts: RemoteOptions, s3: S3Server | None, start_vm: StartVM, work: Path,
                   expected: Samples, version: str = OLD) -> None:
    """vmrestore and snapferry restore `url`; a VictoriaMetrics on each result exports `expected`."""
    tag = url.rsplit("/", 2)[-2:]
    out_vm = work / ("vmrestore-" + "-".join(tag).replace(":", "_"))
    flags = _vm_s3_flags(s3) if s3 else [f"-httpListenAddr=127.0.0.1:{free_port()}", "-loggerLevel=WARN"]
    cmd = [require_binary("vmrestore", version), f"-src={url}", f"-storageDataPath={out_vm}", *flags]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert p.returncode == 0, f"vmrestore of {url} failed: {p.stderr[-3000:]}"
    assert restored_samples(start_vm, out_vm, version) == expected, f"vmrestore of {url}"
    out_sf = work / ("snapferry-" + "-".join(tag).replace(":", "_"))
    snapferry.restore(url, str(out_sf), remote_options=opts, progress="off")
    assert restored_samples(start_vm, out_sf, version) == expected, f"snapferry restore of {url}"


class Recorder:
    """Another observer of the manager's events, as a service might add."""

    def __init__(self) -> None:
        self.done: list[tuple[str, bool]] = []

    def run_started(self, type: BackupType) -> None:
        pass

    def backup_done(self, type: BackupType, ok: bool, seconds: float, uploaded_bytes: int) -> None:
        self.done.append((type.value, ok))

    def retention_done(self, ok: bool, seconds: float, deleted: int) -> None:
        pass
