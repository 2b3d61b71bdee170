"""Backups of many small parts: batched hand-offs, and the bare first attempt of each upload.

The retry layer (remotes/retrying.py) runs an upload's first attempt without tenacity and
hands a transient failure to the policy's loop as its attempt 1; these check, through a real S3 server
behind tests/faultproxy.py, that the attempts, waits and log are what the policy says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapferry.actions.backup import Backup
from snapferry.actions.source import SnapshotDir
from snapferry.actions.uploads import _BATCH_BELOW, _BATCH_PARTS, upload_batches
from snapferry.errors import TransientRemoteError
from snapferry.parts import Part
from snapferry.remotes import open_remote
from snapferry.retry import RetryPolicy
from snapferry.settings import ProgressMode, RunSettings
from tests.conftest import write_random
from tests.faultproxy import FaultPlan, FaultProxy, Request, object_put
from tests.servers import S3Server

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.0)
OFF = ProgressMode.OFF


def _small_snapshot(root: Path, files: int) -> Path:
    for i in range(files):
        write_random(root / "data" / "small" / f"{i:04d}" / "values.bin", 100 + i, i)
    return root


@pytest.fixture
def proxy(seaweedfs: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(seaweedfs.endpoint) as p:
        yield p
        assert not p.stats.errors, p.stats.errors


class PartPuts:
    """A FaultPlan match: PUTs of part objects (not the .ignore files), counted."""

    def __init__(self) -> None:
        self.seen = 0
        self._lock = threading.Lock()

    def __call__(self, req: Request) -> bool:
        if not object_put(req) or req.path.endswith(".ignore"):
            return False
        with self._lock:
            self.seen += 1
        return True


def test_small_parts_go_in_batches_and_big_ones_alone() -> None:
    big = [Part(f"b{i}", 1 << 20, 0, 1 << 20, 1 << 20) for i in range(3)]
    small = [Part(f"s{i}", 10, 0, 10, 10) for i in range(2 * _BATCH_PARTS + 5)]
    edge = Part("e", _BATCH_BELOW, 0, _BATCH_BELOW, _BATCH_BELOW)
    batches = upload_batches([*big, edge, *small])
    assert batches[:4] == [[big[0]], [big[1]], [big[2]], [edge]]
    assert [len(b) for b in batches[4:]] == [_BATCH_PARTS, _BATCH_PARTS, 5]
    assert [p for b in batches for p in b] == [*big, edge, *small]  # every part once, in order


def test_a_failed_first_attempt_is_retried_as_the_policy_says(
    seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = _small_snapshot(tmp_path / "snap", 40)
    url, opts = seaweedfs.new_remote("bk")
    opts.custom_s3_endpoint = proxy.endpoint
    puts = PartPuts()
    proxy.set_plan(FaultPlan(rate=1.0, kinds=("503",), match=puts, limit=2))  # the first two part PUTs fail
    with caplog.at_level(logging.WARNING, logger="snapferry"):
        res = Backup(open_remote(url, opts), SnapshotDir(str(src)), RunSettings(4, retry=FAST, progress=OFF)).run()
    assert res.parts_uploaded == 40
    assert proxy.stats.faults["503"] == 2
    assert puts.seen == 42  # 40 parts, two of them twice
    retried = [r.getMessage() for r in caplog.records if "retrying after a transient error" in r.getMessage()]
    assert len(retried) == 2 and all("attempt 1 failed" in m for m in retried), retried
    objs = seaweedfs.client().list_objects_v2(Bucket=url.split("/")[2], Prefix="bk/")["Contents"]
    assert sum(1 for o in objs if not o["Key"].endswith(".ignore")) == 40


def test_an_upload_that_always_fails_makes_exactly_the_policys_attempts(
    seaweedfs: S3Server, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = _small_snapshot(tmp_path / "snap", 5)
    url, opts = seaweedfs.new_remote("bk")
    opts.custom_s3_endpoint = proxy.endpoint
    puts = PartPuts()
    proxy.set_plan(FaultPlan(rate=1.0, kinds=("503",), match=puts))
    with pytest.raises(TransientRemoteError) as e:
        Backup(open_remote(url, opts), SnapshotDir(str(src)), RunSettings(1, retry=FAST, progress=OFF)).run()
    assert puts.seen == FAST.attempts, "one part, tried exactly `attempts` times, then the run stops"
    assert "SlowDown" in str(e.value) and url in str(e.value), e.value
