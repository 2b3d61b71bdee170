"""Attack of round 5: `snapferry-vmrestore` of an encrypted backup without a key said to "give
its key with --encryption-key-file FILE", a flag the drop-in does not take (its flag is
`-snapferry.encryptionKeyFile`). The sentence now names the drop-in flag too; and with that
flag the same command restores the backup."""

from __future__ import annotations

from pathlib import Path

from snapferry.errors import EXIT_USAGE
from tests.attack.r5util import backed_up, month_tree
from tests.conftest import tree_digest
from tests.dropin.helpers import run_script
from tests.test_cli import assert_one_line_error, run


def test_dropin_vmrestore_names_its_own_key_flag(tmp_path: Path) -> None:
    tree = month_tree(tmp_path / "snap")
    key = tmp_path / "k.key"
    assert run("keygen", str(key)).returncode == 0
    url = backed_up(tree, f"fs://{tmp_path / 'bk'}", "--encrypt", "--encryption-key-file", str(key))
    p = run_script("vmrestore", [f"-src={url}", f"-storageDataPath={tmp_path / 'db'}"], check=False)
    assert_one_line_error(p, EXIT_USAGE, url, "is an encrypted backup", "-snapferry.encryptionKeyFile=FILE")
    assert not (tmp_path / "db").exists()
    p = run_script("vmrestore", [f"-src={url}", f"-storageDataPath={tmp_path / 'db'}",
                                 f"-snapferry.encryptionKeyFile={key}"], check=False)
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "db") == tree_digest(tree)
