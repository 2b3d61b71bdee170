"""The action objects (Backup, Restore, Copy, Verify, Info) and the RunSettings they share:
a lent remote is used and never closed, the shared settings are checked before anything is
touched, and a restore mark's key file is read only when there is a mark."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import snapferry
from snapferry.actions.backup import Backup
from snapferry.actions.copy import Copy
from snapferry.actions.info import Info
from snapferry.actions.restore import Restore
from snapferry.actions.source import SnapshotDir
from snapferry.actions.verify import Verify
from snapferry.errors import EXIT_USAGE, UsageError
from snapferry.remotes.fs import FsRemote
from snapferry.settings import ProgressMode, RunSettings
from tests.conftest import tree_digest

QUIET = RunSettings(progress=ProgressMode.OFF)


class LentFs(FsRemote):
    """A real fs:// remote that counts the calls to close() (the caller's to make)."""

    closed = 0

    def close(self) -> None:
        type(self).closed += 1
        super().close()


def test_actions_on_a_lent_remote_use_it_and_never_close_it(snapshot_tree: Path, tmp_path: Path) -> None:
    bk, copy = LentFs(str(tmp_path / "bk")), LentFs(str(tmp_path / "copy"))
    LentFs.closed = 0
    backed = Backup(bk, SnapshotDir(str(snapshot_tree)), QUIET).run()
    assert backed.dst == bk.url and backed.origin is None and backed.parts_uploaded > 0
    copied = Copy(bk, copy, QUIET).run()
    assert copied.parts_copied == backed.parts_uploaded
    assert Verify(copy, QUIET, read_data=True).run().problems == []
    info = Info(copy, QUIET).run()
    assert info.backup is not None and info.backup.complete
    out = tmp_path / "out"
    plan = Restore(copy, str(out), QUIET).dry_run()
    assert not out.exists() and plan.bytes_to_download == backed.backup_bytes
    restored = Restore(copy, str(out), QUIET).run()
    assert restored.downloaded_bytes == backed.backup_bytes
    assert tree_digest(out) == tree_digest(snapshot_tree)
    assert LentFs.closed == 0  # every run left the caller's remotes open
    bk.close()
    copy.close()
    assert LentFs.closed == 2


def test_the_shared_settings_are_checked_before_anything_is_touched(snapshot_tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "bk"
    with pytest.raises(UsageError, match="--concurrency must be at least 1, not 0"):
        snapferry.backup(f"fs://{dst}", str(snapshot_tree), concurrency=0)
    with pytest.raises(UsageError, match="--progress 'quiet' is none of auto, bar, log, off"):
        snapferry.backup(f"fs://{dst}", str(snapshot_tree), progress="quiet")
    with pytest.raises(UsageError, match="--concurrency must be at least 1"):
        RunSettings(concurrency=0)
    assert not dst.exists()


def test_a_restore_mark_s_key_file_is_read_only_when_there_is_a_mark(tmp_path: Path) -> None:
    """An init container without a mark returns at once, whatever its key file is; with one
    the key file is read (a missing one is exit 2 naming it)."""
    data = tmp_path / "data"
    data.mkdir()
    missing = tmp_path / "no.key"

    def manager_restore() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "snapferry", "manager", "restore", "--storage-data-path", str(data),
             "--encryption-key-file", str(missing), "--progress", "off"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    p = manager_restore()
    assert p.returncode == 0 and "nothing to restore" in p.stderr, p.stderr
    (data / "backup_restore.ignore").write_text(f"fs://{tmp_path / 'bk'}\n")
    p = manager_restore()
    assert p.returncode == EXIT_USAGE and str(missing) in p.stderr and "Traceback" not in p.stderr, p.stderr
