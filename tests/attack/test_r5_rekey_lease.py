"""Attack of round 5 on rekey: it rewrote the key record without the backup's lease, so a copy
replacing the backup (with its own record) or a second rekey could write between its read and
its write, and both reported success while only the last key opened the backup. A rekey now
takes the lease like every writer there: while another holds it, exit 4 and the record is
untouched; afterwards the rekey works and the new key restores the backup."""

from __future__ import annotations

from pathlib import Path

from snapferry.errors import EXIT_LOCKED
from snapferry.lease import BackupLease
from snapferry.remotes import open_remote
from tests.attack.r5util import backed_up, month_tree
from tests.conftest import tree_digest
from tests.test_cli import assert_one_line_error, run


def test_rekey_waits_for_the_lease_of_the_backup(tmp_path: Path) -> None:
    tree = month_tree(tmp_path / "snap")
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    for k in (old, new):
        assert run("keygen", str(k)).returncode == 0
    url = backed_up(tree, f"fs://{tmp_path / 'bk'}", "--encrypt", "--encryption-key-file", str(old))
    record = tmp_path / "bk" / "snapferry_encryption.ignore"
    before = record.read_bytes()
    remote = open_remote(url)
    try:
        with BackupLease(remote, "copy"):  # another writer (a copy, a backup, a rekey) is at work
            p = run("rekey", "--src", url, "--encryption-key-file", str(old), "--new-encryption-key-file", str(new))
            assert_one_line_error(p, EXIT_LOCKED, url, "another copy is writing")
            assert record.read_bytes() == before
    finally:
        remote.close()
    p = run("rekey", "--src", url, "--encryption-key-file", str(old), "--new-encryption-key-file", str(new))
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "bk" / "snapferry_lock.ignore").exists()  # released
    p = run("restore", "--src", url, "--dst", str(tmp_path / "db"), "--encryption-key-file", str(new),
            "--progress", "off")
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "db") == tree_digest(tree)
