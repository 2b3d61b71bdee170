"""The list items of a real backup under a real fs:// --dst: created_at in vmbackupmanager's
RFC 3339 form (`2025-04-25T15:48:49Z`, UTC, whole seconds), whatever form the metadata has."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import snapferry
from snapferry.manager.catalog import Catalog
from snapferry.names import BACKUP_METADATA_FILE, RESTORE_MARK_FILE
from snapferry.remotes import RemoteOptions
from tests.servers import S3Server
from tests.vm import run_snapferry


@pytest.mark.parametrize(("stored", "listed"), [
    ("2025-04-25T15:48:49Z", "2025-04-25T15:48:49Z"),
    ("2025-04-25T17:48:49+02:00", "2025-04-25T15:48:49Z"),
    ("2025-04-25T15:48:49.123456789Z", "2025-04-25T15:48:49Z"),
    ("2025-04-25T15:48:49", "2025-04-25T15:48:49Z"),  # zone-less: UTC, never the host's zone
])
def test_created_at_is_listed_in_vmbackupmanager_form(snapshot_tree: Path, tmp_path: Path, stored: str,
                                                       listed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # the CLI's host zone must not leak into created_at
    root = tmp_path / "backups"
    snapferry.backup(f"fs://{root}/daily/2025-04-25", str(snapshot_tree), progress="off")
    meta = root / "daily/2025-04-25" / BACKUP_METADATA_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "created_at": stored}))
    with Catalog(f"fs://{root}", RemoteOptions()) as catalog:
        [info] = catalog.list()
    assert info.to_dict()["created_at"] == listed
    assert info.created_at.replace(microsecond=0) == datetime(2025, 4, 25, 15, 48, 49, tzinfo=UTC)
    items = json.loads(run_snapferry("manager", "backup", "list", "--json", "--dst", f"fs://{root}").stdout)
    assert [(i["name"], i["created_at"]) for i in items] == [("daily/2025-04-25", listed)]


def test_a_url_restore_mark_is_checked_with_the_remote_options_given_without_dst(
        snapshot_tree: Path, tmp_path: Path, seaweedfs: S3Server) -> None:
    """`manager restore create s3://...` with no --dst (the init container's other cluster's
    backup) reaches the backup through the --custom-s3-endpoint and credentials it was given."""
    url, opts = seaweedfs.new_remote("other-cluster/vm-0")
    assert opts.creds_file_path and opts.config_file_path
    snapferry.backup(f"{url}/weekly/2026-48", str(snapshot_tree), remote_options=opts, progress="off")
    data = tmp_path / "vmdata-restore"
    data.mkdir()
    args = ["--storage-data-path", str(data), "--custom-s3-endpoint", seaweedfs.endpoint,
            "--creds-file-path", opts.creds_file_path, "--config-file-path", opts.config_file_path]
    run_snapferry("manager", "restore", "create", f"{url}/weekly/2026-48", *args)
    assert (data / RESTORE_MARK_FILE).read_text().strip() == f"{url}/weekly/2026-48"
    p = run_snapferry("manager", "restore", "create", f"{url}/weekly/2026-47", *args, "--retries", "1", check=False)
    assert p.returncode == 3 and "incomplete" in p.stderr and "Traceback" not in p.stderr, p.stderr
