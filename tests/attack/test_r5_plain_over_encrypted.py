"""Attack of round 5: a plain backup (or copy) over an encrypted backup left its key record
behind. The result is plain, but a restore given the key it was once made with said "is an
encrypted backup; give its key with --encryption-key-file", the flag it had. The plain writer
(which replaces an encrypted backup only with --replace-encrypted) now removes the record with
the encrypted marker, so that restore is told what is true (the backup is not encrypted), and
the backup restores without a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapferry.errors import EXIT_USAGE
from tests.attack.r5util import backed_up, month_tree
from tests.conftest import tree_digest
from tests.test_cli import assert_one_line_error, run


@pytest.mark.parametrize("writer", ["backup", "copy"])
def test_a_plain_write_over_an_encrypted_backup_leaves_no_key_record(writer: str, tmp_path: Path) -> None:
    tree = month_tree(tmp_path / "snap")
    key = tmp_path / "k.key"
    assert run("keygen", str(key)).returncode == 0
    url = f"fs://{tmp_path / 'bk'}"
    backed_up(tree, url, "--encrypt", "--encryption-key-file", str(key))
    assert (tmp_path / "bk" / "snapferry_encryption.ignore").exists()
    # on purpose (a plain run without --replace-encrypted is refused: tests/crypto/test_downgrade.py)
    if writer == "backup":
        backed_up(tree, url, "--replace-encrypted")
    else:
        plain = backed_up(tree, f"fs://{tmp_path / 'plain'}")
        p = run("copy", "--src", plain, "--dst", url, "--progress", "off", "--replace-encrypted")
        assert p.returncode == 0, p.stderr
    assert not (tmp_path / "bk" / "snapferry_encryption.ignore").exists()
    p = run("restore", "--src", url, "--dst", str(tmp_path / "db1"), "--encryption-key-file", str(key),
            "--progress", "off")
    assert_one_line_error(p, EXIT_USAGE, url, "is not an encrypted backup", "drop --encryption-key-file")
    p = run("restore", "--src", url, "--dst", str(tmp_path / "db2"), "--progress", "off")
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "db2") == tree_digest(tree)
    # and an encrypted backup over it again works with the key, as at first
    backed_up(tree, url, "--encrypt", "--encryption-key-file", str(key))
    p = run("restore", "--src", url, "--dst", str(tmp_path / "db3"), "--encryption-key-file", str(key),
            "--progress", "off")
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "db3") == tree_digest(tree)
