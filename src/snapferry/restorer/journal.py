"""The journal beside `<file>.tmp`: which parts are already written and durable.

With preallocation a partial file looks full-size, so its size says nothing
about what was written. The journal closes that gap: a record is appended only
after the part's bytes were fdatasync'ed, so after a crash every recorded part
is on disk and only the others are downloaded again.

Format (text, one record a line, each line checked by its CRC32):
    snapferry-journal 1 <file_size hex> <crc>
    <offset hex> <size hex> <crc>
A torn last line fails its CRC and is ignored; a bad header voids the journal.
"""

from __future__ import annotations

import os
import zlib

_MAGIC = "snapferry-journal 1"


def _crc(text: str) -> str:
    return f"{zlib.crc32(text.encode()):08x}"


def _line(text: str) -> bytes:
    return f"{text} {_crc(text)}\n".encode()


def _check(line: str) -> str | None:
    body, _, crc = line.rpartition(" ")
    return body if body and crc == _crc(body) else None


class Journal:
    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(cls, path: str, file_size: int, dir_fd: int | None = None) -> Journal:
        """path is relative to dir_fd when given (the file's directory, see beneath.py)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o644, dir_fd=dir_fd)
        os.write(fd, _line(f"{_MAGIC} {file_size:x}"))
        os.fdatasync(fd)
        return cls(path, fd)

    @classmethod
    def reopen(cls, path: str, dir_fd: int | None = None) -> Journal:
        return cls(path, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd))

    def record(self, offset: int, size: int) -> None:
        """Call only after the part's bytes are durable (fdatasync of the .tmp)."""
        os.write(self._fd, _line(f"{offset:x} {size:x}"))
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journal(path: str, file_size: int) -> set[tuple[int, int]] | None:
    """The (offset, size) pairs recorded, or None when the journal is not valid for file_size."""
    try:
        with open(path, "rb") as f:
            data = f.read(16 * 1024 * 1024)
    except OSError:
        return None
    lines = data.decode("ascii", errors="replace").split("\n")
    if not lines or _check(lines[0]) != f"{_MAGIC} {file_size:x}":
        return None
    done: set[tuple[int, int]] = set()
    # The last element is "" after a complete final line, or a torn record.
    for raw in lines[1:]:
        body = _check(raw)
        if body is None:
            continue
        off_s, _, size_s = body.partition(" ")
        try:
            done.add((int(off_s, 16), int(size_s, 16)))
        except ValueError:
            continue
    return done
