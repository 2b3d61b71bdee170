"""Content checksums: the gap vmbackup leaves open (nothing verifies the bytes).

A backup gets `snapferry_checksums.ignore` beside its markers: for every part,
the CRC32 of each 16 MiB block from the part's start (what a restore checks in
memory, block by block, as the bytes arrive) and, since manifest version 2, the
CRC32C of the whole part (what GCS keeps of every object, so `verify` compares
it without downloading). vmbackup and vmrestore ignore names ending in
`.ignore`, so the layout stays theirs. Parts without an entry (written by
another tool) are counted as unverified, never guessed.

The manifest is also the backup's inventory: a part it lists that the listing
lacks is a lost part, and the backup is incomplete (`check_inventory`).
"""

from __future__ import annotations

import base64
import enum
import json
import logging
import mmap
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from isal import isal_zlib

from .crc32c_ext import crc32c  # the C function, without the crc32c package's metadata read
from .errors import BadBackupError
from .names import BACKUP_COMPLETE_FILE, BACKUP_METADATA_FILE, LEASE_FILE
from .names import MANIFEST_FILE as MANIFEST_FILE  # importable from here too, as before names.py
from .parts import Part, always_transfer

if TYPE_CHECKING:  # remotes import this module (BlockCrcs): no import cycle at run time
    from .remotes.base import Remote

log = logging.getLogger("snapferry")

BLOCK = 16 * 1024 * 1024
_HEADER_V1 = "snapferry-checksums 1 crc32 16777216"
_HEADER_V2 = "snapferry-checksums 2 crc32 16777216 crc32c"
MANIFEST_VERSION = 2

# zlib's CRC32 (the same polynomial and values), from ISA-L: folded with PCLMULQDQ, about
# four times zlib's speed here (16 MiB: 1.8 ms vs 7.2 ms), and it releases the GIL. Every
# byte a backup stores and a restore downloads passes through it.
crc32 = isal_zlib.crc32


class PartCrcs(list[int]):
    """The CRC32 of each BLOCK of a part, plus the CRC32C of the whole part when it was
    taken on the same pass (None in a version-1 manifest).

    A list, so every backend's upload_part keeps returning `list[int]`: the whole-part
    CRC32C rides along without a second read and without touching the backends."""

    __slots__ = ("crc32c",)

    def __init__(self, crcs: Iterable[int] = (), crc32c: int | None = None) -> None:
        super().__init__(crcs)
        self.crc32c = crc32c


def crc32c_of(crcs: list[int]) -> int | None:
    """The whole-part CRC32C carried by a CRC list, if any."""
    return crcs.crc32c if isinstance(crcs, PartCrcs) else None


def region_crcs(fd: int, offset: int, size: int) -> PartCrcs:
    """CRC32 per BLOCK of fd[offset:offset+size], and the CRC32C of it all.

    The bytes are hashed where the page cache holds them (mmap), not copied into a
    buffer first: right after a backup wrote or read them, that is all the work left.
    One block is mapped at a time, so the mapped pages never add more than a block to
    the process's resident set. Both CRCs release the GIL on big buffers, so several
    threads hash in parallel.
    """
    if size == 0:
        return PartCrcs([0], 0)
    if os.fstat(fd).st_size < offset + size:
        # Checked first: touching a mapping beyond the end of its file is a SIGBUS.
        raise OSError(f"unexpected end of file before byte {offset + size}")
    out: list[int] = []
    c32c = 0
    for pos in range(offset, offset + size, BLOCK):
        n = min(BLOCK, offset + size - pos)
        start = pos - pos % mmap.ALLOCATIONGRANULARITY
        skip = pos - start
        with mmap.mmap(fd, skip + n, prot=mmap.PROT_READ, offset=start) as m, memoryview(m) as mv:
            out.append(crc32(mv[skip:]))
            c32c = crc32c(mv[skip:], c32c)
    return PartCrcs(out, c32c)


class BlockCrcs:
    """CRC32 per BLOCK of a stream fed in order, in pieces of any size (an upload's chunks),
    and the CRC32C of the whole stream."""

    def __init__(self) -> None:
        self._done: list[int] = []
        self._crc = 0
        self._fill = 0  # bytes of the current block so far
        self._c32c = 0

    def update(self, data: bytes | bytearray | memoryview) -> int | None:
        """Feed the next bytes; returns their CRC32 when they start a block and stay within it
        (an upload chunk of up to BLOCK bytes: its checksum header comes free)."""
        n = len(data)
        self._c32c = crc32c(data, self._c32c)
        if self._fill == 0 and n <= BLOCK:
            crc = crc32(data)
            if n == BLOCK:
                self._done.append(crc)
            else:
                self._crc, self._fill = crc, n
            return crc
        with memoryview(data) as mv:
            pos = 0
            while pos < n:
                take = min(BLOCK - self._fill, n - pos)
                self._crc = crc32(mv[pos : pos + take], self._crc)
                self._fill += take
                pos += take
                if self._fill == BLOCK:
                    self._done.append(self._crc)
                    self._crc = self._fill = 0
        return None

    def result(self) -> PartCrcs:
        """The CRCs so far, a last partial block included (an empty stream is one empty block)."""
        if self._fill or not self._done:
            return PartCrcs([*self._done, self._crc], self._c32c)
        return PartCrcs(self._done, self._c32c)


def file_crcs(path: str, offset: int, size: int) -> PartCrcs:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return region_crcs(fd, offset, size)
    finally:
        os.close(fd)


def encode(entries: Mapping[str, list[int]]) -> bytes:
    """A version-2 manifest: `name<TAB>crc32,crc32,...<TAB>crc32c` (crc32c empty when unknown)."""
    lines = [_HEADER_V2]
    hex8 = "{:08x}".format  # a bound method, not a generator per entry: 30,000 parts are many lines
    for name in sorted(entries):
        crcs = entries[name]
        c = crc32c_of(crcs)
        lines.append(f"{name}\t{','.join(map(hex8, crcs))}\t{'' if c is None else hex8(c)}")
    return ("\n".join(lines) + "\n").encode()


def decode(data: bytes) -> dict[str, PartCrcs] | None:
    """Entries by part name, or None for a manifest this version does not understand.
    Version 1 (block CRC32s only) is still read."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if not lines or lines[0] not in (_HEADER_V1, _HEADER_V2):
        return None
    v2 = lines[0] == _HEADER_V2
    out: dict[str, PartCrcs] = {}
    for line in lines[1:]:
        fields = line.rsplit("\t", 2 if v2 else 1)
        if len(fields) != (3 if v2 else 2):
            continue
        try:
            crcs = [int(c, 16) for c in fields[1].split(",")]
            c32c = int(fields[2], 16) if v2 and fields[2] else None
        except ValueError:
            continue
        out[fields[0]] = PartCrcs(crcs, c32c)
    return out


def verifiable(parts: Iterable[Part], manifest: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """The entries a restore can check: files that change without changing size are left out."""
    return {p.name: manifest[p.name] for p in parts if p.name in manifest and not always_transfer(p.path)}


# --- what a store keeps of an object, compared with the manifest ---------------------


class ChecksumAlgorithm(enum.Enum):
    CRC32 = "crc32"
    CRC32C = "crc32c"
    MD5 = "md5"


@dataclass(frozen=True, slots=True)
class ProviderChecksum:
    """A checksum the store computed or was given when the object was written."""

    algorithm: ChecksumAlgorithm
    digest: bytes  # big-endian, as the store sends it (base64-decoded)
    # S3 multipart objects: the checksum of the N chunk checksums ("...-N"); 0 = of the whole object
    chunks: int = 0
    chunk_size: int = 0  # the size of the first chunk of a composite, when the store says it

    def __str__(self) -> str:
        return f"{self.algorithm.value} {self.digest.hex()}" + (f"-{self.chunks}" if self.chunks else "")


def parse_s3_checksum(algorithm: ChecksumAlgorithm, value: str, chunk_size: int = 0) -> ProviderChecksum:
    """`x-amz-checksum-*` values: base64, with `-N` after a multipart upload's composite."""
    b64, _, n = value.partition("-")
    return ProviderChecksum(algorithm, base64.b64decode(b64), int(n) if n.isdigit() else 0, chunk_size)


def expected_provider_digest(entry: list[int], kept: ProviderChecksum) -> bytes | None:
    """What `kept` must be if the part's bytes are the manifest's; None when the two cannot
    be compared (an MD5, a composite of chunks other than the manifest's blocks, a
    version-1 entry without the whole-part CRC32C)."""
    if kept.algorithm is ChecksumAlgorithm.CRC32C and not kept.chunks:
        c = crc32c_of(entry)
        return None if c is None else c.to_bytes(4, "big")
    if kept.algorithm is ChecksumAlgorithm.CRC32:
        if not kept.chunks and len(entry) == 1:
            return entry[0].to_bytes(4, "big")
        if kept.chunks == len(entry) and kept.chunk_size == BLOCK:
            # Chunks of one BLOCK each (snapferry's multipart chunk size): the composite is
            # the CRC32 of the chunks' CRC32s, which are the manifest's block CRCs.
            return crc32(b"".join(c.to_bytes(4, "big") for c in entry)).to_bytes(4, "big")
    return None


# --- the manifest as the backup's inventory ---------------------------------------


class ManifestState(enum.Enum):
    PRESENT = "present"
    MISSING = "missing"
    UNREADABLE = "unreadable"  # unknown version, or not a manifest at all


@dataclass(frozen=True, slots=True)
class Manifest:
    state: ManifestState
    entries: dict[str, PartCrcs] = field(default_factory=dict)
    version: int = 0
    detail: str = ""


def parse_manifest(data: bytes | None) -> Manifest:
    if data is None:
        return Manifest(ManifestState.MISSING)
    entries = decode(data)
    if entries is None:
        head = data[:60].decode("utf-8", errors="replace").split("\n", 1)[0]
        return Manifest(ManifestState.UNREADABLE, detail=f"its first line is {head!r}")
    version = 2 if data.startswith(_HEADER_V2.encode()) else 1
    return Manifest(ManifestState.PRESENT, entries, version)


def read_manifest(src: Remote) -> Manifest:
    return parse_manifest(src.read_file(MANIFEST_FILE) if src.has_file(MANIFEST_FILE) else None)


def read_metadata(src: Remote) -> dict[str, object]:
    """backup_metadata.ignore as a dict ({} when absent or not JSON: vmbackup's may differ)."""
    if not src.has_file(BACKUP_METADATA_FILE):
        return {}
    try:
        meta = json.loads(src.read_file(BACKUP_METADATA_FILE))
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def made_by_snapferry(meta: Mapping[str, object]) -> bool:
    return str(meta.get("created_by", "")).startswith("snapferry")


def metadata_lost(src: Remote, listed: Collection[str] | None = None) -> bool:
    """Whether a complete backup without a manifest lost its backup_metadata.ignore too.

    vmbackup 1.79.5 (and older) writes no metadata but "ok" in backup_complete.ignore;
    later vmbackup and snapferry write an empty marker and always the metadata (snapferry
    also the manifest). An empty marker without metadata is left by no tool: both small
    files were lost, and whether parts are lost or changed cannot be told. A leftover
    snapferry lease says the same. `listed`: the names a listing found (no HEAD each)."""
    def has(name: str) -> bool:
        return name in listed if listed is not None else src.has_file(name)

    if has(LEASE_FILE):
        return True
    if not has(BACKUP_COMPLETE_FILE) or has(BACKUP_METADATA_FILE) or has(MANIFEST_FILE):
        return False
    return src.read_file(BACKUP_COMPLETE_FILE).strip() == b""


def missing_parts(parts: Iterable[Part], manifest: Manifest) -> list[str]:
    """Names the manifest lists that the listing lacks, sorted."""
    listed = {p.name for p in parts}
    return sorted(n for n in manifest.entries if n not in listed)


def check_inventory(src: Remote, parts: list[Part], *, verify: bool) -> dict[str, list[int]]:
    """The one check restore and copy make before they change anything: every part the
    manifest lists must be in the listing (else the backup is incomplete, exit 3).

    Returns the entries a restore checks its bytes against. A snapferry backup lists
    exactly its parts in its manifest; a listing with parts the manifest lacks means
    another tool (vmbackup) wrote to the backup afterwards, deleting and adding parts,
    so the manifest is no inventory any more: said, and refused by `verify` (restore
    --verify), while the parts it does list are still checked (a part's name fixes its
    bytes). Without a manifest: a vmbackup backup has none and is restored unverified;
    a snapferry backup whose manifest vanished (or is unreadable) is said so, and
    `verify` refuses it, since nothing can prove that no part is lost.
    """
    m = read_manifest(src)
    entries: dict[str, list[int]] = {}
    if m.state is ManifestState.PRESENT:
        entries = verifiable(parts, m.entries)
        unlisted = sorted(p.name for p in parts if p.name not in m.entries)
        lost = missing_parts(parts, m)
        if not unlisted:
            if lost:
                raise BadBackupError(
                    f"the backup {src.url} is incomplete: {lost[0]} is listed in its {MANIFEST_FILE} but missing "
                    f"from the store ({len(lost)} part(s) lost); rerun the backup to repair it"
                )
            return entries
        problem = (
            f"its {MANIFEST_FILE} does not list {len(unlisted)} of its parts (e.g. {unlisted[0]}): another tool "
            "wrote to it after snapferry"
        )
    elif m.state is ManifestState.UNREADABLE:
        problem = f"its {MANIFEST_FILE} is unreadable ({m.detail})"
    elif made_by_snapferry(read_metadata(src)):
        problem = f"it was made by snapferry but its {MANIFEST_FILE} is missing"
    elif metadata_lost(src):
        problem = (f"it lost both its {MANIFEST_FILE} and its {BACKUP_METADATA_FILE} (no manifest: bytes "
                   "cannot be checked)")
    else:
        log.warning("%s has no %s (made by vmbackup?): its parts cannot be checked", src.url, MANIFEST_FILE)
        return {}
    if verify:
        raise BadBackupError(
            f"cannot verify {src.url}: {problem}, so lost or corrupt parts cannot be detected; "
            "rerun the backup to rewrite it, or restore without --verify to accept the risk"
        )
    log.warning("%s: %s; lost parts cannot be detected, %d parts are checked", src.url, problem, len(entries))
    return entries
