"""Attack of round 5: `snapferry keygen` on a full disk left an empty key file under the name
asked for (created, then the write failed), so the rerun after freeing space said "the key file
exists; keygen never overwrites a key" about a file that holds no key. The key is now written
under a temporary name and linked into place: a failed keygen leaves nothing, exit 5."""

from __future__ import annotations

from pathlib import Path

from snapferry.errors import EXIT_NO_SPACE
from tests.attack.r5util import backed_up, month_tree
from tests.fsutil import fill_disk, mounted_tmpfs
from tests.test_cli import assert_one_line_error, run


def test_keygen_on_a_full_disk_leaves_no_key_file(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "mnt", "1m") as mnt:
        fill_disk(mnt / "filler")
        key = mnt / "backup.key"
        p = run("keygen", str(key))
        assert_one_line_error(p, EXIT_NO_SPACE, str(key), "no space")
        assert sorted(x.name for x in mnt.iterdir()) == ["filler"]
        (mnt / "filler").unlink()
        p = run("keygen", str(key))
        assert p.returncode == 0, p.stderr
        assert sorted(x.name for x in mnt.iterdir()) == ["backup.key"]
        assert key.stat().st_mode & 0o777 == 0o600
        backed_up(month_tree(tmp_path / "snap"), f"fs://{tmp_path / 'bk'}", "--encrypt", "--encryption-key-file",
                  str(key))
