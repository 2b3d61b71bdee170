"""Deterministic VictoriaMetrics-like snapshot trees for tests, and tree comparison.

`make_snapshot(root, seed=..., scale_bytes=...)` writes a snapshot directory *at*
`root` (and returns it) shaped like one of VictoriaMetrics:

    data/small/YYYY_MM/<16-HEX part>/{timestamps.bin,values.bin,index.bin,metaindex.bin,metadata.json}
    data/small/YYYY_MM/parts.json
    data/big/YYYY_MM/<16-HEX part>/...          data/big/YYYY_MM/appliedRetention.txt
    indexdb/<16-HEX generation>/<16-HEX part>/{items.bin,lens.bin,index.bin,metaindex.bin,metadata.json}
    indexdb/<16-HEX generation>/parts.json
    metadata/minTimestampForCompositeIndex

with some empty files, and incompressible content. The same arguments always give
the same bytes (content comes from SHAKE-128 of the seed, the path and a chunk
counter: about 500 MB/s, and a file is written in 4 MiB chunks, so big trees
cost no memory).

With `symlinks=True`, `data/small`, `data/big` and `indexdb` are relative
symlinks to directories elsewhere under `root.parent`, like a real
VictoriaMetrics 1.79.5 snapshot. When `root` is `<P>/snapshots/<NAME>`, the
targets are exactly where VictoriaMetrics puts them:
`<P>/data/small/snapshots/<NAME>` (link `../../../data/small/snapshots/<NAME>`),
`<P>/data/big/snapshots/<NAME>`, `<P>/indexdb/snapshots/<NAME>`. Otherwise they
go to `root.parent/<root.name>.links/{small,big,indexdb}`.

`make_vm_snapshot(storage_data_path, ...)` does the VictoriaMetrics layout in one
call: it picks a snapshot name `YYYYMMDDhhmmss-HEX` from the seed (or takes
`name`) and returns `<storage_data_path>/snapshots/<name>`, ready for
`vmbackup -storageDataPath=P -snapshotName=NAME` or `snapferry backup
--storage-data-path P --snapshot-name NAME`.

`tree_digest(root)` maps every file's relative path to its sha256, following
symlinks and ignoring `flock.lock` and `restore-in-progress`;
`assert_same_tree(a, b)` fails with a readable difference.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "IGNORED_NAMES",
    "GeneratedFile",
    "assert_same_tree",
    "backup_digest",
    "make_snapshot",
    "make_vm_snapshot",
    "plan_snapshot",
    "snapshot_name",
    "tree_digest",
    "tree_sizes",
    "write_content",
]

MiB = 1024 * 1024
_CHUNK = 4 * MiB

# Files that are not data: VictoriaMetrics' lock and the restore marker.
IGNORED_NAMES = frozenset({"flock.lock", "restore-in-progress"})

_LINKED = ("data/small", "data/big", "indexdb")


@dataclass(frozen=True)
class GeneratedFile:
    path: str  # relative to the snapshot root, '/'-separated
    size: int
    text: bytes | None = None  # fixed content (small JSON / text files); None means random bytes


def snapshot_name(seed: int, when: datetime | None = None) -> str:
    """A VictoriaMetrics snapshot name `YYYYMMDDhhmmss-HEX`, deterministic for a seed.

    The time defaults to 2026-11-24 plus `seed` minutes (recent, inside any retention).
    """
    rng = random.Random(f"snapshot-name-{seed}")
    t = when or datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC) + timedelta(minutes=seed % 100_000)
    return f"{t:%Y%m%d%H%M%S}-{rng.getrandbits(64):016X}"


def _hex16(rng: random.Random) -> str:
    return f"{rng.getrandbits(64) | (1 << 60):016X}"


def plan_snapshot(
    *,
    seed: int,
    scale_bytes: int,
    months: int = 2,
    big_file_size: int | None = None,
) -> list[GeneratedFile]:
    """The files `make_snapshot` writes, with their sizes; random files sum to scale_bytes.

    `big_file_size` makes `data/big/<first month>/<first part>/values.bin` exactly that
    many bytes (instead of its share of scale_bytes), e.g. for a file cut into several parts.
    """
    if scale_bytes < 0:
        raise ValueError("scale_bytes must be >= 0")
    rng = random.Random(seed)
    month_names = []
    y, m = 2026, 11
    for _ in range(max(1, months)):
        month_names.append(f"{y:04d}_{m:02d}")
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    month_names.reverse()

    # (path, weight) for random files; weight 0 means an empty file.
    weighted: list[tuple[str, float]] = []
    fixed: list[GeneratedFile] = []

    def json_file(path: str, obj: object) -> None:
        data = json.dumps(obj, sort_keys=True).encode()
        fixed.append(GeneratedFile(path, len(data), data))

    for table, n_parts, scale in (("small", 3, 1.0), ("big", 2, 3.0)):
        for month in month_names:
            part_ids = sorted(_hex16(rng) for _ in range(n_parts))
            for i, pid in enumerate(part_ids):
                base = f"data/{table}/{month}/{pid}"
                empty = table == "small" and i == n_parts - 1  # a part with no samples: empty files
                weighted.append((f"{base}/values.bin", 0.0 if empty else scale * rng.uniform(4, 8)))
                weighted.append((f"{base}/timestamps.bin", 0.0 if empty else scale * rng.uniform(1, 3)))
                weighted.append((f"{base}/index.bin", scale * rng.uniform(0.1, 0.4)))
                weighted.append((f"{base}/metaindex.bin", 0.0 if empty else rng.uniform(0.01, 0.05)))
                json_file(
                    f"{base}/metadata.json",
                    {
                        "RowsCount": rng.randrange(0, 10**7),
                        "BlocksCount": rng.randrange(0, 10**5),
                        "MinTimestamp": 1_790_000_000_000 + rng.randrange(10**9),
                        "MaxTimestamp": 1_795_000_000_000 + rng.randrange(10**9),
                        "MinDedupInterval": 0,
                    },
                )
            json_file(f"data/{table}/{month}/parts.json", sorted(part_ids))
            if table == "big":
                text = b"1700000000"
                fixed.append(GeneratedFile(f"data/big/{month}/appliedRetention.txt", len(text), text))

    for g in range(2):
        gen = _hex16(rng)
        part_ids = sorted(_hex16(rng) for _ in range(2 - g))  # the older generation has fewer parts
        for pid in part_ids:
            base = f"indexdb/{gen}/{pid}"
            weighted.append((f"{base}/items.bin", rng.uniform(1, 3)))
            weighted.append((f"{base}/lens.bin", rng.uniform(0.05, 0.2)))
            weighted.append((f"{base}/index.bin", rng.uniform(0.05, 0.2)))
            weighted.append((f"{base}/metaindex.bin", rng.uniform(0.01, 0.05)))
            json_file(f"{base}/metadata.json", {"ItemsCount": rng.randrange(10**6), "BlocksCount": 7})
        json_file(f"indexdb/{gen}/parts.json", part_ids)
    weighted.append(("metadata/minTimestampForCompositeIndex", 0.0))

    total_w = sum(w for _, w in weighted)
    files: list[GeneratedFile] = []
    for path, w in weighted:
        size = int(scale_bytes * w / total_w) if total_w else 0
        if path == "metadata/minTimestampForCompositeIndex":
            size = 8
        files.append(GeneratedFile(path, size))
    # Put the rounding remainder on the largest random file, so the sum is exact.
    randoms = sum(f.size for f in files) - 8
    if scale_bytes > randoms and files:
        big_i = max(range(len(files)), key=lambda i: files[i].size)
        f = files[big_i]
        files[big_i] = GeneratedFile(f.path, f.size + scale_bytes - randoms)
    files.extend(fixed)
    if big_file_size is not None:
        first_big = next(f.path for f in files if f.path.startswith("data/big/") and f.path.endswith("/values.bin"))
        files = [GeneratedFile(first_big, big_file_size) if f.path == first_big else f for f in files]
    files.sort(key=lambda f: f.path)
    return files


def write_content(path: Path, size: int, seed: int, key: str) -> None:
    """Write `size` deterministic incompressible bytes to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            n = min(_CHUNK, size - written)
            f.write(hashlib.shake_128(f"{seed}\0{key}\0{i}".encode()).digest(n))
            written += n
            i += 1


def _link_target_dir(root: Path, sub: str) -> tuple[Path, str]:
    """Where a linked subdir of the snapshot really lives, and the relative link text."""
    if root.parent.name == "snapshots":
        target = root.parent.parent / sub / "snapshots" / root.name
    else:
        target = root.parent / f"{root.name}.links" / sub.replace("/", "_")
    return target, os.path.relpath(target, (root / sub).parent)


def make_snapshot(
    root: Path,
    *,
    seed: int,
    scale_bytes: int = 4 * MiB,
    symlinks: bool = False,
    months: int = 2,
    big_file_size: int | None = None,
    extra_files: Mapping[str, int] | None = None,
) -> Path:
    """Write a VictoriaMetrics-like snapshot tree at `root` (see the module docstring); return root.

    `extra_files` maps more relative paths to sizes (random content, 0 for empty).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if symlinks:
        for sub in _LINKED:
            target, rel = _link_target_dir(root, sub)
            target.mkdir(parents=True, exist_ok=True)
            link = root / sub
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(rel, target_is_directory=True)
    files = plan_snapshot(seed=seed, scale_bytes=scale_bytes, months=months, big_file_size=big_file_size)
    for path, size in (extra_files or {}).items():
        files.append(GeneratedFile(path, size))
    for f in files:
        dst = root / f.path
        if f.text is not None:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.text)
        else:
            write_content(dst, f.size, seed, f.path)
    # An empty directory, as VictoriaMetrics leaves them (a backup stores files only).
    (root / "data" / "big" / "2026_12").mkdir(parents=True, exist_ok=True)
    return root


def make_vm_snapshot(
    storage_data_path: Path,
    *,
    seed: int,
    scale_bytes: int = 4 * MiB,
    name: str | None = None,
    symlinks: bool = True,
    **kw: object,
) -> Path:
    """A generated snapshot at `<storage_data_path>/snapshots/<name>`, linked like VictoriaMetrics 1.79.5."""
    name = name or snapshot_name(seed)
    root = Path(storage_data_path) / "snapshots" / name
    return make_snapshot(root, seed=seed, scale_bytes=scale_bytes, symlinks=symlinks, **kw)  # type: ignore[arg-type]


def _walk_files(root: Path) -> Iterable[tuple[str, Path]]:
    root = Path(root)
    for dirpath, _dirs, names in os.walk(root, followlinks=True):
        for fn in names:
            if fn in IGNORED_NAMES:
                continue
            full = Path(dirpath, fn)
            if not full.exists():  # a dangling symlink: not a file of the tree
                continue
            yield full.relative_to(root).as_posix(), full


def tree_digest(root: Path, ignore: Iterable[str] = IGNORED_NAMES, follow_links: bool = True) -> dict[str, str]:
    """sha256 of every file below root, keyed by relative '/' path, skipping files named in
    `ignore` at any depth (flock.lock and restore-in-progress unless told). Symlinks are
    followed, or with follow_links=False recorded as "symlink" (the crash tests check
    that a restore never leaves one where a file belongs)."""
    skip = set(ignore)
    out: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(root, followlinks=follow_links):
        for fn in names:
            full = Path(dirpath, fn)
            rel = full.relative_to(root).as_posix()
            if fn in skip:
                continue
            if not follow_links and full.is_symlink():
                out[rel] = "symlink"
                continue
            if not full.exists():  # a dangling symlink: not a file of the tree
                continue
            h = hashlib.sha256()
            with open(full, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            out[rel] = h.hexdigest()
    return out


def tree_sizes(root: Path) -> dict[str, int]:
    """Size of every file below root (same rules as tree_digest)."""
    return {rel: full.stat().st_size for rel, full in _walk_files(root)}


_PART_RE = re.compile(r"^(.+)/([0-9A-F]{16})_([0-9A-F]{16})_([0-9A-F]{16})$")


def backup_digest(backup_dir: Path) -> dict[str, str]:
    """What an fs:// backup (vmbackup layout) restores to: sha256 of each file, rebuilt from its parts.

    Fails when a file's parts leave a gap, overlap, or disagree on the file size.
    """
    files: dict[str, list[tuple[int, int, int, Path]]] = {}
    for rel, full in _walk_files(backup_dir):
        if rel.endswith(".ignore"):
            continue
        m = _PART_RE.match(rel)
        assert m, f"{rel!r} in {backup_dir} is not a part object"
        file_size, offset, size = (int(x, 16) for x in m.group(2, 3, 4))
        assert full.stat().st_size == size, f"{rel} holds {full.stat().st_size} bytes"
        files.setdefault(m.group(1), []).append((offset, size, file_size, full))
    out: dict[str, str] = {}
    for path, parts in files.items():
        parts.sort()
        h = hashlib.sha256()
        pos = 0
        for offset, size, file_size, full in parts:
            assert offset == pos and file_size == parts[0][2], f"{path}: parts do not tile the file"
            h.update(full.read_bytes())
            pos += size
        assert pos == parts[0][2], f"{path}: parts cover {pos} of {parts[0][2]} bytes"
        out[path] = h.hexdigest()
    return out


def assert_same_tree(a: Path, b: Path) -> None:
    """Fail unless the two trees hold the same files with the same bytes (symlinks followed)."""
    da, db = tree_digest(a), tree_digest(b)
    if da == db:
        return
    only_a = sorted(set(da) - set(db))
    only_b = sorted(set(db) - set(da))
    differ = sorted(p for p in set(da) & set(db) if da[p] != db[p])
    sa, sb = tree_sizes(a), tree_sizes(b)
    lines = [f"trees differ: {a} vs {b}"]
    if only_a:
        lines.append(f"  only in {a} ({len(only_a)}): {only_a[:10]}")
    if only_b:
        lines.append(f"  only in {b} ({len(only_b)}): {only_b[:10]}")
    if differ:
        shown = [f"{p} ({sa.get(p)} vs {sb.get(p)} bytes)" for p in differ[:10]]
        lines.append(f"  different content ({len(differ)}): {shown}")
    raise AssertionError("\n".join(lines))
