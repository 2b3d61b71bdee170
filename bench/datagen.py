"""A deterministic VictoriaMetrics-like snapshot for benchmarks.

Layout of a dataset directory (cached in the workdir, keyed by scale and seed):

    <dataset>/storage/snapshots/<SNAPSHOT_NAME>/
        data/big/YYYY_MM/<16HEX>/{values.bin,timestamps.bin,index.bin,metaindex.bin,metadata.json}
        data/small/YYYY_MM/<16HEX>/{...same five files...}
        data/{small,big}/2026_11/parts.json
        indexdb/<16HEX>/<16HEX>/{items.bin,lens.bin,index.bin,metaindex.bin,metadata.json}

`storage` is a -storageDataPath for vmbackup (-snapshotName=SNAPSHOT_NAME);
the snapshot directory itself is the --src for snapferry and `cp -a`.

At the default scale (3 GiB) the two big `values.bin` files are 1.11 GiB each,
so they split into two parts; about 400 small part directories (2000 files)
and a dozen indexdb parts make up the rest. Bytes are incompressible
(SFC64 output from numpy, ~3 GB/s; random.Random.randbytes as a fallback)
and each file is seeded by (seed, file index), so files differ from each other.

`bigfile` is the single-file dataset of scenario (c): one values.bin of
4 GiB x scale/3 (4 GiB at the default scale: four 1 GiB parts).

`small` is the many-small-files snapshot of scenario (g) and the cost curve:
N files (default 30,000) in N/5 small-part directories of the same five files,
each file's size drawn from a lognormal around 8 KiB (sigma 0.8) and scaled so
the whole is 0.2 GiB x N/30,000 (a mean of ~7 KiB a file). Keyed by N and seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

SNAPSHOT_NAME = "20261124120000-17A3F0C2D1E50050"
GIB = 1024**3
BLOCK = 4 * 1024 * 1024
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    root: Path  # the dataset directory
    storage: Path  # -storageDataPath
    snapshot: Path  # storage/snapshots/NAME
    name: str
    total_bytes: int
    files: int

    @property
    def key(self) -> str:
        return self.root.name


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016X}"


def _metadata(rng: random.Random, rows: int) -> bytes:
    ts = 1_790_000_000_000 + rng.randrange(10**9)
    doc = {
        "RowsCount": rows,
        "BlocksCount": max(1, rows // 8192),
        "MinTimestamp": ts,
        "MaxTimestamp": ts + rng.randrange(10**8),
        "MinDedupInterval": 0,
    }
    return json.dumps(doc).encode()


def layout(scale: float, seed: int) -> list[tuple[str, int | bytes]]:
    """(relative path, size in random bytes | literal content), in a fixed order."""
    rng = random.Random(seed)
    total = int(scale * GIB)
    files: list[tuple[str, int | bytes]] = []

    # Two big parts with one values.bin each larger than 1 GiB at scale 3.
    for month in ("2026_10", "2026_11"):
        d = f"data/big/{month}/{_hex(rng)}"
        files.append((f"{d}/values.bin", int(0.37 * total)))
        files.append((f"{d}/timestamps.bin", int(0.025 * total) + rng.randrange(4096)))
        files.append((f"{d}/index.bin", int(0.003 * total) + rng.randrange(4096)))
        files.append((f"{d}/metaindex.bin", 20_000 + rng.randrange(20_000)))
        files.append((f"{d}/metadata.json", _metadata(rng, 10**9)))
    big_bytes = sum(s for _, s in files if isinstance(s, int))

    # indexdb: two generations, a dozen parts.
    idx_total = int(0.04 * total)
    gens = [_hex(rng), _hex(rng)]
    idx_parts = [(gens[i % 2], _hex(rng)) for i in range(12)]
    weights = [rng.uniform(0.2, 1.0) for _ in idx_parts]
    wsum = sum(weights)
    for (g, p), w in zip(idx_parts, weights, strict=True):
        size = int(idx_total * w / wsum)
        d = f"indexdb/{g}/{p}"
        files.append((f"{d}/items.bin", int(size * 0.85)))
        files.append((f"{d}/lens.bin", int(size * 0.1)))
        files.append((f"{d}/index.bin", int(size * 0.04)))
        files.append((f"{d}/metaindex.bin", max(64, int(size * 0.01))))
        files.append((f"{d}/metadata.json", _metadata(rng, size // 16)))

    # Hundreds of small parts: log-uniform sizes, scaled to fill the rest.
    small_total = max(0, total - big_bytes - idx_total)
    n_small = max(40, round(400 * scale / 3))
    raw = [2 ** rng.uniform(13, 23) for _ in range(n_small)]  # 8 KiB .. 8 MiB
    k = small_total / sum(raw)
    months = ("2026_09", "2026_10", "2026_11")
    part_names: dict[str, list[str]] = {m: [] for m in months}
    for i, r in enumerate(raw):
        size = max(1024, int(r * k))
        month = months[i * len(months) // n_small]
        name = _hex(rng)
        part_names[month].append(name)
        d = f"data/small/{month}/{name}"
        files.append((f"{d}/timestamps.bin", int(size * 0.3)))
        files.append((f"{d}/values.bin", int(size * 0.6)))
        files.append((f"{d}/index.bin", int(size * 0.08)))
        files.append((f"{d}/metaindex.bin", max(32, int(size * 0.02))))
        files.append((f"{d}/metadata.json", _metadata(rng, size // 8)))
    # parts.json: always transferred by both tools (content changes, size does not)
    files.append(("data/small/2026_11/parts.json", json.dumps(sorted(part_names["2026_11"])).encode()))
    return files


def bigfile_layout(scale: float, seed: int) -> list[tuple[str, int | bytes]]:
    rng = random.Random(seed + 1_000_003)
    d = f"data/big/2026_11/{_hex(rng)}"
    return [(f"{d}/values.bin", int(4 * GIB * scale / 3)), (f"{d}/metadata.json", _metadata(rng, 10**9))]


SMALL_FILES = 30_000
SMALL_BYTES_PER_FILE = 0.2 * GIB / SMALL_FILES
PART_FILES = ("timestamps.bin", "values.bin", "index.bin", "metaindex.bin", "metadata.json")


def small_layout(files: int, seed: int) -> list[tuple[str, int]]:
    """`files` small files (rounded up to whole part dirs of five), lognormal sizes, in a fixed order."""
    rng = random.Random(seed * 7_919 + files)
    n_dirs = max(1, -(-files // len(PART_FILES)))
    raw = [rng.lognormvariate(math.log(8192), 0.8) for _ in range(n_dirs * len(PART_FILES))]
    k = len(raw) * SMALL_BYTES_PER_FILE / sum(raw)
    months = ("2026_08", "2026_09", "2026_10", "2026_11")
    out: list[tuple[str, int]] = []
    for i in range(n_dirs):
        d = f"data/small/{months[i * len(months) // n_dirs]}/{_hex(rng)}"
        for j, name in enumerate(PART_FILES):
            out.append((f"{d}/{name}", max(64, int(raw[i * len(PART_FILES) + j] * k))))
    return out


class _Source:
    """Incompressible bytes for one file, deterministic in (seed, index)."""

    def __init__(self, seed: int, index: int) -> None:
        try:
            import numpy as np

            self._np = np
            self._bg = np.random.SFC64([seed, index])
        except ImportError:  # pragma: no cover - numpy comes with matplotlib
            self._np = None
            self._rng = random.Random(seed * 1_000_003 + index)

    def block(self, n: int) -> memoryview | bytes:
        if self._np is not None:
            words = self._bg.random_raw((n + 7) // 8)
            return memoryview(words.view(self._np.uint8))[:n]
        return self._rng.randbytes(n)


def _write_tree(root: Path, files: list[tuple[str, int | bytes]], seed: int) -> int:
    total = 0
    for index, (rel, spec) in enumerate(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb", buffering=0) as f:
            if isinstance(spec, bytes):
                f.write(spec)
                total += len(spec)
                continue
            src = _Source(seed, index)
            left = spec
            while left > 0:
                n = min(BLOCK, left)
                f.write(src.block(n))
                left -= n
            total += spec
    return total


def _ensure(workdir: Path, kind: str, scale: float, seed: int) -> Dataset:
    """kind: snapshot | bigfile (scale in GiB) | small (scale = number of files)."""
    key = f"{kind}-f{int(scale)}-seed{seed}" if kind == "small" else f"{kind}-s{scale:g}-seed{seed}"
    root = workdir / "datasets" / key
    snap = root / "storage" / "snapshots" / SNAPSHOT_NAME
    stamp = root / "manifest.json"
    if stamp.exists():
        m = json.loads(stamp.read_text())
        if m.get("version") == FORMAT_VERSION:
            return Dataset(root, root / "storage", snap, SNAPSHOT_NAME, m["total_bytes"], m["files"])
    if root.exists():
        shutil.rmtree(root)
    files: list[tuple[str, int | bytes]]
    if kind == "small":
        files = list(small_layout(int(scale), seed))
    else:
        files = layout(scale, seed) if kind == "snapshot" else bigfile_layout(scale, seed)
    t0 = time.perf_counter()
    total = _write_tree(snap, files, {"snapshot": seed, "bigfile": seed + 7, "small": seed + 13}[kind])
    os.sync()
    secs = time.perf_counter() - t0
    m = {"version": FORMAT_VERSION, "scale": scale, "seed": seed, "total_bytes": total, "files": len(files),
         "generated_seconds": round(secs, 2)}
    stamp.write_text(json.dumps(m, indent=2))
    print(f"[datagen] {key}: {len(files)} files, {total / GIB:.2f} GiB in {secs:.1f}s", flush=True)
    return Dataset(root, root / "storage", snap, SNAPSHOT_NAME, total, len(files))


def ensure_dataset(workdir: Path, scale: float, seed: int) -> Dataset:
    return _ensure(workdir, "snapshot", scale, seed)


def ensure_bigfile(workdir: Path, scale: float, seed: int) -> Dataset:
    return _ensure(workdir, "bigfile", scale, seed)


def ensure_small(workdir: Path, files: int, seed: int) -> Dataset:
    return _ensure(workdir, "small", files, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=3.0, help="GiB (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / "work")
    ap.add_argument("--bigfile", action="store_true", help="also the single-file dataset of scenario (c)")
    ap.add_argument("--files", type=int, help="also the many-small-files dataset of scenario (g) with N files")
    a = ap.parse_args()
    ds = ensure_dataset(a.workdir.resolve(), a.scale, a.seed)
    print(ds)
    if a.bigfile:
        print(ensure_bigfile(a.workdir.resolve(), a.scale, a.seed))
    if a.files:
        print(ensure_small(a.workdir.resolve(), a.files, a.seed))


if __name__ == "__main__":
    main()
