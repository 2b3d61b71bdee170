from __future__ import annotations

import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import snapferry
from snapferry.checksums import BLOCK, MANIFEST_FILE, BlockCrcs, decode, encode, file_crcs
from snapferry.errors import BadBackupError
from snapferry.remotes import open_remote
from tests.conftest import tree_digest

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"


def test_block_crcs_and_manifest_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "f"
    data = bytes(range(256)) * (BLOCK // 256) + b"tail"
    f.write_bytes(data)
    crcs = file_crcs(str(f), 0, len(data))
    assert crcs == [zlib.crc32(data[:BLOCK]), zlib.crc32(b"tail")]
    assert file_crcs(str(f), 0, 0) == [0]
    assert decode(encode({"a b/ü": crcs, "x": [0]})) == {"a b/ü": crcs, "x": [0]}
    assert decode(b"something else\n") is None


def test_region_crcs_at_an_unaligned_offset_and_past_the_end(tmp_path: Path) -> None:
    f = tmp_path / "f"
    data = random.Random(3).randbytes(BLOCK + 5000)
    f.write_bytes(data)
    assert file_crcs(str(f), 4097, BLOCK) == [zlib.crc32(data[4097 : 4097 + BLOCK])]
    with pytest.raises(OSError, match="end of file"):
        file_crcs(str(f), 4097, BLOCK + 5000)  # a clear error, not a SIGBUS from the mapping


@pytest.mark.parametrize("pieces", [[BLOCK, BLOCK, 7], [1, BLOCK - 1, BLOCK + 3, 4], [3 * MIB] * 11, [0]])
def test_block_crcs_of_a_stream_match_the_file(tmp_path: Path, pieces: list[int]) -> None:
    data = random.Random(len(pieces)).randbytes(sum(pieces))
    (tmp_path / "f").write_bytes(data)
    acc = BlockCrcs()
    pos = 0
    for n in pieces:
        free = acc.update(data[pos : pos + n])
        # Bytes that start a block and stay in it come with their CRC (an upload's checksum header).
        assert free == (zlib.crc32(data[pos : pos + n]) if n <= BLOCK and pos % BLOCK == 0 else None)
        pos += n
    assert acc.result() == file_crcs(str(tmp_path / "f"), 0, len(data))


def test_backup_writes_a_checksum_for_every_part(snapshot_tree: Path, tmp_path: Path) -> None:
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    manifest = decode((bk / MANIFEST_FILE).read_bytes())
    assert manifest is not None
    parts = open_remote(f"fs://{bk}").list_parts()
    assert set(manifest) == {p.name for p in parts}
    # An incremental backup with nothing changed keeps the entries without re-reading.
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    assert decode((bk / MANIFEST_FILE).read_bytes()) == manifest


@pytest.mark.parametrize("inplace", [False, True])
def test_reread_verify_catches_same_size_corruption(snapshot_tree: Path, tmp_path: Path, inplace: bool) -> None:
    """--verify on its own (checks while downloading switched off): the file is read back."""
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(snapshot_tree), max_part_size=MIB, progress="off")
    out = tmp_path / "out"
    ok = snapferry.restore(f"fs://{bk}", str(out), verify=True, checksums=False, progress="off",
                           skip_file_preallocation=inplace)
    assert ok.parts_verified == 9 and ok.parts_unverified == 2  # parts.json, appliedRetention.txt
    victim = sorted((bk / VALUES).iterdir())[2]
    corrupt = bytearray(victim.read_bytes())
    corrupt[12345] ^= 0xFF
    victim.write_bytes(corrupt)
    (out / VALUES).unlink()
    with pytest.raises(BadBackupError, match="checksum"):
        snapferry.restore(f"fs://{bk}", str(out), verify=True, checksums=False, progress="off",
                          skip_file_preallocation=inplace)
    assert not (out / VALUES).exists() and not list(out.rglob("*.tmp*"))
    # With every check switched off the corruption goes unnoticed: that is what the manifest is for.
    r = snapferry.restore(f"fs://{bk}", str(out), checksums=False, progress="off", skip_file_preallocation=inplace)
    assert r.parts_verified == 0
    assert tree_digest(out) != tree_digest(snapshot_tree)


def test_crc32c_ext_is_the_crc32c_packages_function_without_its_metadata_read() -> None:
    """The extension loaded on its own computes what `crc32c.crc32c` does, reads no package
    metadata, and a later `import crc32c` reuses it (a fresh interpreter: nothing loaded yet)."""
    code = """
import os, sys
from snapferry.crc32c_ext import crc32c
assert crc32c(b"123456789") == 0xE3069283, hex(crc32c(b"123456789"))  # the standard check value
data = os.urandom(3 * 1024 * 1024 + 17)
mine = crc32c(memoryview(data)[1000:], crc32c(data[:1000]))
assert "importlib.metadata" not in sys.modules and "crc32c" not in sys.modules, sorted(sys.modules)
import crc32c as package
assert package.crc32c(data) == mine == crc32c(data)
assert sys.modules["crc32c._crc32c"].crc32c is package.crc32c
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
