"""A manager run on every backend: the child remotes of one --dst (manager/remotes.py, shallow
copies of the root's client) put each backup under its own prefix, retention deletes only its
own objects, and a dated backup restores to the samples of its run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapferry
from snapferry.manager.layout import parse_backup_name
from snapferry.manager.service import Manager, ManagerConfig
from snapferry.names import BACKUP_COMPLETE_FILE
from tests.manager.helpers import Feed, StartVM, restored_samples
from tests.manager.sim import SimClock
from tests.servers import RemoteFactory

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

T = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize("any_remote", ["fs", "s3-seaweedfs", "gs", "azblob"], indirect=True)
def test_a_manager_run_on_each_backend(any_remote: RemoteFactory, vm_server: StartVM, tmp_path: Path,
                                       vm_version: str) -> None:
    spec = any_remote(prefix="vm-node-0")
    data = tmp_path / "vmdata"
    vm = vm_server(data, version=vm_version)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    clock = SimClock(T)
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=spec.url, remote_options=spec.options, disable_weekly=True,
                                disable_monthly=True, keep_last_hourly=1), clock=clock)
    try:
        assert mgr.run_once().ok
        feed.ingest_before(T + timedelta(hours=1))
        clock.set(T + timedelta(hours=1))
        result = mgr.run_once()
        assert result.ok and result.deleted == ("hourly/2026-11-27:13",), result

        names = ["daily/2026-11-27", "hourly/2026-11-27:14", "latest"]
        listed = mgr.catalog.list()
        assert [b.name for b in listed] == names
        assert all(b.complete and b.size_bytes == listed[-1].size_bytes for b in listed)
        # every object under the root belongs to one of the backups, at its own prefix
        heads = {p.path.split("/", 2)[0] if p.path.startswith("latest/") else "/".join(p.path.split("/")[:2])
                 for p in mgr.catalog.remotes.root.list_parts()}
        assert heads == set(names)
        latest_parts = sorted((p.path, p.size) for p in mgr.catalog.open(parse_backup_name("latest")).list_parts())
        for n in names[:2]:
            child = mgr.catalog.open(parse_backup_name(n))
            assert child.url == f"{spec.url}/{n}" and child.has_file(BACKUP_COMPLETE_FILE)
            assert sorted((p.path, p.size) for p in child.list_parts()) == latest_parts

        out = tmp_path / "restored"
        snapferry.restore(f"{spec.url}/daily/2026-11-27", str(out), remote_options=spec.options, progress="off")
        assert restored_samples(vm_server, out, vm_version) == feed.up_to(T + timedelta(hours=1))
    finally:
        mgr.close()
