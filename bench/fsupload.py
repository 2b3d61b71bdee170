"""Backup-to-fs:// data path alternatives, measured on the bench dataset (the evidence behind
remotes/fs.py's upload path; kept to re-measure it, not a description of that path).

One part -> one file, 8 threads (snapferry's default concurrency), fsync per part:

  read64-write+crc      the first path: body.read(64 MiB) -> bytes, os.write, fsync; then a CRC32 re-read
  cfr+crc               copy_file_range in 64 MiB steps (zero-copy), fsync; then a CRC32 re-read
  readinto16-crc-write  one pass: 16 MiB reusable buffer, CRC32 it, pwrite it, fsync
  cfr-nocrc             copy_file_range only (the floor)

FsRemote.upload_part today writes parts of 64 KiB and more (directio.wanted) with O_DIRECT through a reused
buffer and hashes them on the way (close to readinto16-crc-write, without the page cache),
smaller ones with copy_file_range, and syncs the filesystem once in flush() rather than
fsyncing every part.

Run: python -m bench.fsupload [--runs 3] [--modes a,b,...] [--scale 3]
(each mode runs in a child process for wall/CPU/peak RSS; caches dropped before each run)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GIB = 1 << 30
BLOCK = 16 << 20
MODES = ("read64-write+crc", "cfr+crc", "readinto16-crc-write", "cfr-nocrc")


def _crc_reread(path: str, off: int, size: int) -> list[int]:
    fd = os.open(path, os.O_RDONLY)
    buf = bytearray(min(BLOCK, max(size, 1)))
    mv = memoryview(buf)
    out = []
    pos = 0
    while pos < size:
        n = os.preadv(fd, [mv[: min(BLOCK, size - pos)]], off + pos)
        out.append(zlib.crc32(mv[:n]))
        pos += n
    os.close(fd)
    return out


def _cfr(path: str, off: int, size: int, d: int) -> None:
    from snapferry.durable import copy_range

    s = os.open(path, os.O_RDONLY)
    pos = 0
    while pos < size:
        pos += copy_range(s, off + pos, d, pos, min(64 << 20, size - pos))
    os.close(s)


def _one(mode: str, src_root: str, dst_root: str, job: tuple[str, int, int]) -> None:
    path, off, size = job
    dst = os.path.join(dst_root, os.path.relpath(path, src_root).replace("/", "_") + f"_{off}")
    d = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if mode == "read64-write+crc":
            with open(path, "rb", buffering=0) as f:
                f.seek(off)
                left = size
                while left:
                    chunk = f.read(min(64 << 20, left))
                    os.write(d, chunk)
                    left -= len(chunk)
            os.fsync(d)
            _crc_reread(path, off, size)
        elif mode == "cfr+crc":
            _cfr(path, off, size, d)
            os.fsync(d)
            _crc_reread(path, off, size)
        elif mode == "readinto16-crc-write":
            s = os.open(path, os.O_RDONLY)
            mv = memoryview(bytearray(BLOCK))
            pos = 0
            while pos < size:
                n = os.preadv(s, [mv[: min(BLOCK, size - pos)]], off + pos)
                zlib.crc32(mv[:n])
                w = 0
                while w < n:
                    w += os.pwrite(d, mv[w:n], pos + w)
                pos += n
            os.close(s)
            os.fsync(d)
        elif mode == "cfr-nocrc":
            _cfr(path, off, size, d)
            os.fsync(d)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        os.close(d)


def child(mode: str, src_root: str, dst_root: str) -> None:
    jobs = []
    for dp, _, fs in os.walk(src_root):
        for f in fs:
            p = os.path.join(dp, f)
            size = os.path.getsize(p)
            jobs.extend((p, off, min(GIB, size - off)) for off in range(0, max(size, 1), GIB))
    os.makedirs(dst_root, exist_ok=True)
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda j: _one(mode, src_root, dst_root, j), jobs))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    from . import measure
    from .datagen import ensure_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--scale", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / "work")
    a = ap.parse_args()
    work = a.workdir.resolve()
    ds = ensure_dataset(work, a.scale, a.seed)
    dst = work / "targets" / "fsupload"
    modes = a.modes.split(",")
    res: dict[str, list[measure.Measurement]] = {m: [] for m in modes}
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    for r in range(a.runs):
        for m in modes:
            shutil.rmtree(dst, ignore_errors=True)
            measure.drop_caches()
            x = measure.run([sys.executable, "-m", "bench.fsupload", "--child", m, str(ds.snapshot), str(dst)],
                            work / "logs" / "fsupload" / f"{m}-{r}", env=env)
            res[m].append(x)
            print(f"{m:<22} {x.wall:6.2f}s user {x.user:5.2f} sys {x.sys:5.2f} rss {x.maxrss_kib / 1024:6.0f} MiB "
                  f"others {x.other_cpu:5.2f}", flush=True)
    shutil.rmtree(dst, ignore_errors=True)
    for m in modes:
        xs = res[m]
        print(f"MEDIAN {m:<22} {statistics.median(x.wall for x in xs):6.2f}s "
              f"cpu {statistics.median(x.cpu for x in xs):5.2f}s rss {max(x.maxrss_kib for x in xs) / 1024:5.0f} MiB")


if __name__ == "__main__":
    main()
