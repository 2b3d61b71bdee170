"""Tampering with an encrypted backup, on fs:// and SeaweedFS: every change is caught.

A flipped byte, a part swapped for another, a part from another backup, a cut part,
a chunk replayed in place of another, an edited manifest: restore and
`verify --read-data` fail with exit 3 naming what was changed, and the file of the
changed part is never renamed into place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import snapferry
from snapferry import api
from snapferry.crypto.chunks import CHUNK, HEADER, TAG
from snapferry.errors import EXIT_BAD_BACKUP, SnapferryError
from tests.servers import RemoteFactory, RemoteSpec

MIB = 1024 * 1024
VALUES = "data/small/2026_11/17A3F0C2D1E50050/values.bin"
FILE_SIZE = 3 * MIB + 17


def part_name(index: int) -> str:
    return f"{VALUES}/{FILE_SIZE:016X}_{index * MIB:016X}_{MIB:016X}"


def encrypted_backup(spec: RemoteSpec, src: Path, key: Path) -> None:
    snapferry.backup(spec.url, str(src), remote_options=spec.options, max_part_size=MIB, progress="off",
                     encrypt=True, encryption_key_file=str(key))


def flip(spec: RemoteSpec, name: str, at: int) -> None:
    data = bytearray(spec.raw_get(name))
    data[at] ^= 0x01
    spec.raw_put(name, bytes(data))


def replay_chunk(spec: RemoteSpec, name: str) -> None:
    """Chunk 0's sealed bytes written over chunk 1's: same length, valid ciphertext, wrong place."""
    data = bytearray(spec.raw_get(name))
    sealed = CHUNK + TAG
    data[HEADER + sealed : HEADER + 2 * sealed] = data[HEADER : HEADER + sealed]
    spec.raw_put(name, bytes(data))


def cut(spec: RemoteSpec, name: str) -> None:
    spec.raw_put(name, spec.raw_get(name)[: -(CHUNK + TAG)])  # the last whole chunk gone


TAMPERS: dict[str, tuple[Callable[[RemoteSpec, RemoteSpec], None], str]] = {
    "flipped-byte": (lambda s, o: flip(s, part_name(1), HEADER + 1000), part_name(1)),
    "flipped-salt": (lambda s, o: flip(s, part_name(1), 12), part_name(1)),
    "swapped-part": (lambda s, o: s.raw_put(part_name(1), s.raw_get(part_name(2))), part_name(1)),
    "other-backup": (lambda s, o: s.raw_put(part_name(1), o.raw_get(part_name(1))), part_name(1)),
    "replayed-chunk": (lambda s, o: replay_chunk(s, part_name(1)), part_name(1)),
    "cut-part": (lambda s, o: cut(s, part_name(1)), part_name(1)),
    "edited-manifest": (lambda s, o: flip(s, "snapferry_checksums.ignore", 40), "snapferry_checksums.ignore"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_tampering_fails_restore_and_verify_with_exit_3(
    remotes: RemoteFactory, snapshot_tree: Path, tmp_path: Path, tamper: str
) -> None:
    key = tmp_path / "key"
    api.keygen(str(key))
    spec, other = remotes(), remotes()
    encrypted_backup(spec, snapshot_tree, key)
    encrypted_backup(other, snapshot_tree, key)  # the same data, with another backup's data key and id
    change, culprit = TAMPERS[tamper]
    change(spec, other)

    out = tmp_path / "out"
    with pytest.raises(SnapferryError) as restored:
        snapferry.restore(spec.url, str(out), remote_options=spec.options, progress="off",
                          encryption_key_file=str(key))
    assert restored.value.exit_code == EXIT_BAD_BACKUP, restored.value
    assert culprit in str(restored.value)
    assert not (out / VALUES).exists()  # the tampered file never renamed into place

    try:
        result = snapferry.verify(spec.url, read_data=True, remote_options=spec.options, progress="off",
                                  encryption_key_file=str(key))
    except SnapferryError as e:
        assert e.exit_code == EXIT_BAD_BACKUP and culprit in str(e), e
    else:
        assert culprit in {p.part for p in result.problems}, result.problems  # the CLI exits 3 on problems

    # The untouched twin restores: the check is not refusing everything.
    snapferry.restore(other.url, str(tmp_path / "twin"), remote_options=other.options, progress="off",
                      encryption_key_file=str(key))
    assert (tmp_path / "twin" / VALUES).read_bytes() == (snapshot_tree / VALUES).read_bytes()
