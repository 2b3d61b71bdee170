"""Real small filesystems and exact tree states for the restore prechecks' tests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "8m") at mnt: a real filesystem that fills up."""
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode != 0:
        pytest.fail("cannot mount a tmpfs for the free-space tests; the test suite runs as root")
    try:
        yield mnt
    finally:
        _umount(mnt)


def _umount(mnt: Path) -> None:
    """A thread of a failed run may still be closing its last file: try again, then
    detach the mount (lazily) rather than leave it behind."""
    for _ in range(20):
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill_disk(filler: Path) -> None:
    """Write filler until the filesystem is full, as another process would."""
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(bytes(1024 * 1024))
        except OSError:
            pass


def tree_state(root: Path) -> dict[str, str] | None:
    """Everything below root, exactly: directories, files (sha256 and mode), symlinks
    (target), including flock.lock and restore-in-progress; None when root is absent."""
    if not os.path.lexists(root):
        return None
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            st = full.lstat()
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                out[rel] = f"dir:{st.st_mode:o}"
            else:
                out[rel] = f"file:{st.st_mode:o}:{hashlib.sha256(full.read_bytes()).hexdigest()}"
    return out
