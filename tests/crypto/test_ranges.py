"""Ranged, resumed and parallel reads of encrypted parts, and copies that stay server-side."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import snapferry
from snapferry import api
from snapferry.crypto.chunks import CHUNK
from snapferry.crypto.keys import load_key
from snapferry.crypto.remote import open_encrypted
from snapferry.remotes import open_remote
from snapferry.restorer.journal import read_journal
from tests.crash import harness as h
from tests.servers import RemoteFactory

MIB = 1024 * 1024


def test_any_plaintext_range_reads_back_exactly(remotes: RemoteFactory, tmp_path: Path) -> None:
    """Ranges starting and ending on, before and after chunk edges: ciphertext offsets by arithmetic."""
    size = 3 * CHUNK + 5
    plain = random.Random(7).randbytes(size)
    src = tmp_path / "snap"
    (src / "data").mkdir(parents=True)
    (src / "data" / "f.bin").write_bytes(plain)
    key = tmp_path / "key"
    api.keygen(str(key))
    spec = remotes()
    snapferry.backup(spec.url, str(src), remote_options=spec.options, progress="off", encrypt=True,
                     encryption_key_file=str(key))
    remote = open_encrypted(open_remote(spec.url, spec.options), load_key(str(key)))
    try:
        (part,) = remote.list_parts()
        assert part.size == part.actual_size == size  # the listing speaks plaintext
        edges = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7, 3 * CHUNK, size - 1]
        for off in edges:
            for end in sorted({min(size, e) for e in [off + 1, off + 100, CHUNK, 2 * CHUNK, 2 * CHUNK + 1, size]}):
                if end <= off:
                    continue
                # smaller than a chunk (chunks handed out in pieces), then room for several whole
                # chunks (opened in batches straight into the buffer, the last short one too)
                for room in (100_000, 2 * CHUNK + 3, 8 * CHUNK):
                    reader = remote.open_part(part, off, end - off)
                    got = bytearray()
                    buf = bytearray(room)
                    while n := reader.readinto(memoryview(buf)):
                        got += buf[:n]
                    reader.close()
                    assert bytes(got) == plain[off:end], (off, end, room)
    finally:
        remote.close()


def _journal_bytes(target: Path) -> int:
    best = 0
    for j in target.rglob("*" + h.JOURNAL_SUFFIX):
        tmp = Path(str(j)[: -len(h.JOURNAL_SUFFIX)] + h.TMP_SUFFIX)
        try:
            recorded = read_journal(str(j), tmp.stat().st_size)
        except (FileNotFoundError, ValueError):
            continue
        best = max(best, sum(n for _off, n in recorded))
    return best


def test_killed_encrypted_restore_resumes_mid_file(tmp_path: Path) -> None:
    """A 40 MiB file in ten 4 MiB parts, each fetched in 1 MiB ranges by 4 workers (ranges
    inside a part start mid-object); SIGKILL once two parts are durable in the file's journal;
    the rerun keeps those bytes, fetches only the rest, and the file is identical."""
    size = 40 * MIB
    src = tmp_path / "snap"
    (src / "data").mkdir(parents=True)
    (src / "data" / "big.bin").write_bytes(random.Random(3).randbytes(size))
    key = tmp_path / "key"
    api.keygen(str(key))
    bk = tmp_path / "bk"
    snapferry.backup(f"fs://{bk}", str(src), progress="off", encrypt=True, encryption_key_file=str(key),
                     max_part_size=4 * MIB)
    target = tmp_path / "out"
    argv = [sys.executable, "-m", "snapferry", "restore", "--src", f"fs://{bk}", "--dst", str(target),
            "--encryption-key-file", str(key), "--progress", "off", "--concurrency", "4",
            "--chunk-size", str(MIB)]
    a = h.run_and_kill([*argv, "--max-bytes-per-second", str(8 * MIB)],
                       lambda pid: _journal_bytes(target) >= 8 * MIB, workdir=tmp_path)
    assert a.killed, a.describe()
    kept = _journal_bytes(target)
    assert 8 * MIB <= kept < size
    final = subprocess.run([*argv, "--json"], capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["resumed_bytes"] >= 8 * MIB and summary["downloaded_bytes"] <= size - 8 * MIB
    assert (target / "data" / "big.bin").read_bytes() == (src / "data" / "big.bin").read_bytes()


def test_big_parts_at_unaligned_offsets_round_trip(tmp_path: Path) -> None:
    """Parts over several 8 MiB mapping windows, starting off page boundaries (the backup maps the
    source file to seal it): restored byte for byte, and verify --read-data is clean."""
    data = random.Random(5).randbytes(40 * MIB + 123)
    src = tmp_path / "snap"
    (src / "data").mkdir(parents=True)
    (src / "data" / "f.bin").write_bytes(data)
    key = tmp_path / "key"
    api.keygen(str(key))
    bk = f"fs://{tmp_path / 'bk'}"
    r = snapferry.backup(bk, str(src), progress="off", encrypt=True, encryption_key_file=str(key),
                         max_part_size=17 * MIB + 1000)
    assert r.parts_uploaded == 3
    v = snapferry.verify(bk, read_data=True, progress="off", encryption_key_file=str(key))
    assert v.problems == [] and v.parts_read == 3
    out = tmp_path / "out"
    snapferry.restore(bk, str(out), progress="off", encryption_key_file=str(key))
    assert (out / "data" / "f.bin").read_bytes() == data
