"""actions/commit.py: the backup side's commit protocol, on a real fs:// location."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapferry.actions.commit import KEEP, BackupSession
from snapferry.errors import LockedError
from snapferry.names import (
    BACKUP_COMPLETE_FILE,
    BACKUP_METADATA_FILE,
    ENCRYPTED_COMPLETE_FILE,
    LEASE_FILE,
    MANIFEST_FILE,
)
from snapferry.remotes.fs import FsRemote


def _marked(root: Path) -> None:
    root.mkdir(parents=True)
    for name, data in ((MANIFEST_FILE, b"old manifest"), (BACKUP_METADATA_FILE, b"{}"), (BACKUP_COMPLETE_FILE, b"")):
        (root / name).write_bytes(data)


def test_commit_writes_manifest_metadata_then_the_marker(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    _marked(root)
    with BackupSession(FsRemote(str(root)), "backup") as session:
        assert (root / LEASE_FILE).exists()
        session.begin()
        assert not (root / BACKUP_COMPLETE_FILE).exists()
        session.commit(b"new manifest", b'{"a":1}', b"ok")
    assert (root / MANIFEST_FILE).read_bytes() == b"new manifest"
    assert (root / BACKUP_METADATA_FILE).read_bytes() == b'{"a":1}'
    assert (root / BACKUP_COMPLETE_FILE).read_bytes() == b"ok"
    assert not (root / LEASE_FILE).exists()


def test_keep_leaves_a_file_and_none_deletes_it(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    _marked(root)
    with BackupSession(FsRemote(str(root)), "copy") as session:
        session.begin()
        session.commit(KEEP, None)
    assert (root / MANIFEST_FILE).read_bytes() == b"old manifest"
    assert not (root / BACKUP_METADATA_FILE).exists()
    assert (root / BACKUP_COMPLETE_FILE).read_bytes() == b""


def test_a_failure_after_begin_leaves_no_marker_and_no_lease(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    _marked(root)
    with pytest.raises(OSError), BackupSession(FsRemote(str(root)), "backup") as session:
        session.begin()
        raise OSError("an upload failed")
    assert not (root / BACKUP_COMPLETE_FILE).exists()
    assert not (root / LEASE_FILE).exists()


def test_a_refusal_before_begin_keeps_the_marker(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    _marked(root)
    with pytest.raises(ValueError), BackupSession(FsRemote(str(root)), "backup"):
        raise ValueError("refused before anything changed")
    assert (root / BACKUP_COMPLETE_FILE).exists()


def test_a_lease_taken_over_writes_nothing_and_stops_transfers(tmp_path: Path) -> None:
    root = tmp_path / "bk"
    _marked(root)
    with pytest.raises(LockedError, match="taken over"), BackupSession(FsRemote(str(root)), "backup") as session:
        session.begin()
        lease = json.loads((root / LEASE_FILE).read_bytes())
        (root / LEASE_FILE).write_text(json.dumps({**lease, "owner": "another writer"}))
        session.commit(b"new manifest", b"{}")
    assert session.stop.is_set()
    assert (root / MANIFEST_FILE).read_bytes() == b"old manifest"
    assert not (root / BACKUP_COMPLETE_FILE).exists()
    assert json.loads((root / LEASE_FILE).read_bytes())["owner"] == "another writer"


def test_begin_unmarks_an_encrypted_backup_too(tmp_path: Path) -> None:
    """A plain run over an encrypted backup: neither marker may vouch for the half-written mix."""
    root = tmp_path / "bk"
    _marked(root)
    (root / ENCRYPTED_COMPLETE_FILE).write_bytes(b"sealed")
    with pytest.raises(OSError), BackupSession(FsRemote(str(root)), "backup") as session:
        session.begin()
        raise OSError("an upload failed")
    assert not (root / BACKUP_COMPLETE_FILE).exists()
    assert not (root / ENCRYPTED_COMPLETE_FILE).exists()
