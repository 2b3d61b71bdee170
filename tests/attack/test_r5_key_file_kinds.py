"""Attack of round 5 on --encryption-key-file: a FIFO named by mistake blocked the run forever
(open waited for a writer), and a device such as /dev/zero was read as a key file. Anything but
a regular file is refused at start: one sentence, exit 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapferry.errors import EXIT_USAGE
from tests.attack.r5util import month_tree
from tests.test_cli import assert_one_line_error, run


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_key_file_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path) -> None:
    tree = month_tree(tmp_path / "snap")
    if kind == "fifo":
        key = tmp_path / "key.fifo"
        os.mkfifo(key)
    else:
        key = Path("/dev/zero")
    dst = tmp_path / "bk"
    # run() has the suite's usual 300 s guard: before the fix the FIFO never returned
    p = run("backup", "--src", str(tree), "--dst", f"fs://{dst}", "--encrypt", "--encryption-key-file", str(key),
            "--progress", "off")
    assert_one_line_error(p, EXIT_USAGE, str(key), "not a regular file")
    assert not dst.exists()
    p = run("keygen", str(tmp_path / "good.key"))
    assert p.returncode == 0, p.stderr
    p = run("backup", "--src", str(tree), "--dst", f"fs://{dst}", "--encrypt", "--encryption-key-file",
            str(tmp_path / "good.key"), "--progress", "off")
    assert p.returncode == 0, p.stderr
    p = run("restore", "--src", f"fs://{dst}", "--dst", str(tmp_path / "db"), "--encryption-key-file", str(key))
    assert_one_line_error(p, EXIT_USAGE, str(key), "not a regular file")
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize("flag", ["--snapshot-tls-ca-file", "--snapshot-tls-cert-file", "--snapshot-tls-key-file"])
def test_a_snapshot_tls_file_that_is_a_fifo_is_refused(flag: str, tmp_path: Path) -> None:
    """The PEM loaders opened a FIFO and waited forever, before any call to VictoriaMetrics."""
    data = tmp_path / "vmdata"
    (data / "snapshots").mkdir(parents=True)
    (data / "flock.lock").touch()
    fifo = tmp_path / "pem.fifo"
    os.mkfifo(fifo)
    pem = tmp_path / "other.pem"
    pem.write_text("not read: the FIFO is refused first\n")
    pair = {"--snapshot-tls-cert-file": "--snapshot-tls-key-file",
            "--snapshot-tls-key-file": "--snapshot-tls-cert-file"}
    extra = [pair[flag], str(pem)] if flag in pair else []
    dst = tmp_path / "bk"
    # run() has the suite's usual 300 s guard: before the fix the FIFO never returned
    p = run("backup", "--storage-data-path", str(data), "--snapshot-create-url", "https://127.0.0.1:9/snapshot/create",
            flag, str(fifo), *extra, "--dst", f"fs://{dst}", "--progress", "off")
    assert_one_line_error(p, EXIT_USAGE, str(fifo), flag, "not a regular file")
    assert not dst.exists()
    assert sorted(x.name for x in data.iterdir()) == ["flock.lock", "snapshots"]
