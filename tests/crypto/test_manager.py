"""The manager encrypts latest/ and its dated copies with the key file it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import snapferry
from snapferry import api
from snapferry.errors import EXIT_USAGE, SnapferryError
from snapferry.manager.restore import restore_marked
from snapferry.manager.service import Manager, ManagerConfig, RunResult
from snapferry.settings import ProgressMode, RunSettings
from tests.manager.helpers import Feed, Recorder, StartVM, restored_samples
from tests.manager.sim import SimClock
from tests.servers import RemoteFactory, RemoteSpec

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("vm_binaries")]

T = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)


def test_an_encrypting_manager_run(remotes: RemoteFactory, vm_server: StartVM, tmp_path: Path) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    spec = remotes(prefix="vm-node-0")
    data = tmp_path / "vmdata"
    vm = vm_server(data)
    feed = Feed(vm, series=2, per_batch=10)
    feed.ingest_before(T)
    clock = SimClock(T)
    mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                dst=spec.url, remote_options=spec.options, disable_weekly=True,
                                disable_monthly=True, keep_last_hourly=1, encryption_key_file=str(key)),
                  clock=clock)
    try:
        assert mgr.run_once().ok
        feed.ingest_before(T + timedelta(hours=1))
        clock.set(T + timedelta(hours=1))
        result = mgr.run_once()
        assert result.ok and result.deleted == ("hourly/2026-11-27:13",), result
        listed = mgr.catalog.list()
        assert [b.name for b in listed] == ["daily/2026-11-27", "hourly/2026-11-27:14", "latest"]
        assert all(b.complete for b in listed)
        # The dated copies carry latest/'s record: copied server-side, sealed parts as they were.
        record = spec.raw_get("latest/snapferry_encryption.ignore")
        assert spec.raw_get("daily/2026-11-27/snapferry_encryption.ignore") == record
        assert not any(n.startswith("hourly/2026-11-27:13/") for n, _ in mgr.catalog.remotes.root.list_objects())
        for n in ("latest", "daily/2026-11-27"):
            assert not mgr.catalog.remotes.child(n).has_file("backup_complete.ignore")  # vmrestore refuses it
    finally:
        mgr.close()

    # info of the layout needs no key: names, sizes and completeness are visible anyway, and the
    # catalog's times (the metadata stays plain JSON, authenticated by the sealed manifest)
    layout = snapferry.info(spec.url, remote_options=spec.options)
    assert {b.name: b.complete for b in layout.backups} == {
        "latest": True, "daily/2026-11-27": True, "hourly/2026-11-27:14": True}
    assert all(b.created_at for b in layout.backups) and all(b.created_at for b in listed)
    dated = snapferry.verify(f"{spec.url}/daily/2026-11-27", remote_options=spec.options, progress="off",
                             encryption_key_file=str(key))
    assert not dated.problems and dated.metadata_authenticated and dated.created_at, dated
    other = tmp_path / "other.key"
    api.keygen(str(other))
    with pytest.raises(SnapferryError) as wrong:
        Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                              dst=spec.url, remote_options=spec.options, encryption_key_file=str(other)))
    assert wrong.value.exit_code == EXIT_USAGE and "was encrypted with the key" in str(wrong.value)
    with pytest.raises(SnapferryError) as no_key:
        snapferry.restore(f"{spec.url}/daily/2026-11-27", str(tmp_path / "x"), remote_options=spec.options,
                          progress="off")
    assert no_key.value.exit_code == EXIT_USAGE and "encrypted" in str(no_key.value)
    # The init-container restore of a restore mark passes the key through.
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "backup_restore.ignore").write_text(f"{spec.url}/daily/2026-11-27\n")
    r = restore_marked(str(restored), None, RunSettings(remote_options=spec.options, progress=ProgressMode.OFF),
                       encryption_key_file=str(key))
    assert r is not None
    assert restored_samples(vm_server, restored) == feed.up_to(T + timedelta(hours=1))


def test_a_manager_without_a_key_never_replaces_an_encrypted_backup(
    remotes: RemoteFactory, vm_server: StartVM, snapshot_tree: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    data = tmp_path / "vmdata-live"
    vm = vm_server(data)
    Feed(vm, series=2, per_batch=10).ingest_before(T)

    def encrypted(spec: RemoteSpec, name: str) -> None:
        snapferry.backup(f"{spec.url}/{name}", str(snapshot_tree), remote_options=spec.options, progress="off",
                         encrypt=True, encryption_key_file=str(key))

    def run_once(spec: RemoteSpec) -> tuple[RunResult, Recorder]:
        events = Recorder()
        mgr = Manager(ManagerConfig(storage_data_path=str(data), snapshot_create_url=vm.snapshot_create_url,
                                    dst=spec.url, remote_options=spec.options, disable_hourly=True,
                                    disable_weekly=True, disable_monthly=True),
                      clock=SimClock(T), events=events)
        try:
            return mgr.run_once(), events
        finally:
            mgr.close()

    def objects(spec: RemoteSpec, prefix: str) -> dict[str, bytes]:
        root = spec.open()
        try:
            return {n: spec.raw_get(n) for n, _ in root.list_objects() if n.startswith(prefix)}
        finally:
            root.close()

    # latest/ encrypted: the manager starts (its API and probes stay up), each run is refused.
    spec = remotes(prefix="vm-node-0")
    encrypted(spec, "latest")
    before = objects(spec, "latest/")
    result, events = run_once(spec)
    assert not result.ok and result.error is not None, result
    assert result.error.startswith(f"{spec.url}/latest holds an encrypted backup"), result.error
    assert "--encryption-key-file" in result.error
    assert events.done == [("latest", False)]  # counted as a failed backup
    assert any(r.levelname == "WARNING" and "this manager has no key" in r.getMessage() for r in caplog.records)
    assert any(r.levelname == "ERROR" and "holds an encrypted backup" in r.getMessage() for r in caplog.records)
    assert objects(spec, "latest/") == before
    assert objects(spec, "daily/") == {}

    # A dated backup that is encrypted is not replaced by a plain copy of a plain latest/.
    spec = remotes(prefix="vm-node-1")
    encrypted(spec, "daily/2026-11-27")
    before = objects(spec, "daily/")
    result, events = run_once(spec)
    assert not result.ok and events.done == [("latest", True), ("daily", False)], (result, events.done)
    assert result.error is not None and result.error.startswith(f"{spec.url}/daily/2026-11-27 holds an encrypted")
    assert objects(spec, "daily/") == before
