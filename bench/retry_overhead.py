"""The per-operation cost of the retry layer (remotes/retrying.py): a wrapped call against
the same call on the bare remote, on a remote that does no I/O, so the difference is
the layer's own time. Run: python -m bench.retry_overhead
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from snapferry.parts import Part
from snapferry.remotes.base import Body, LocalRegion, Reader
from snapferry.remotes.retrying import with_retries
from snapferry.retry import RetryPolicy


class _Reader:
    def __init__(self, n: int) -> None:
        self.left = n

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), self.left)
        self.left -= n
        return n

    def close(self) -> None:
        pass


class _Body:
    size = 0

    def read(self, n: int = -1) -> bytes:
        return b""

    def rewind(self) -> None:
        pass


class NullRemote:
    """A Remote whose operations do nothing: what is timed is the call path."""

    url = "null://"

    def open_part(self, part: Part, offset: int = 0, length: int | None = None) -> Reader:
        return _Reader(length if length is not None else part.size - offset)

    def upload_part(self, part: Part, body: Body, local: LocalRegion | None = None,
                    progress: Callable[[int], None] | None = None) -> list[int] | None:
        return None

    def has_file(self, name: str) -> bool:
        return True


def _best(fn: Callable[[Any], object], remote: object, n: int) -> float:
    """Seconds per call, the best of five runs of n calls."""
    return min(timeit.repeat(lambda: fn(remote), number=n, repeat=5)) / n


def main() -> None:
    bare = NullRemote()
    wrapped = with_retries(bare, RetryPolicy())
    part = Part("data/x.bin", 1 << 20, 0, 1 << 20, 1 << 20)
    body = _Body()
    buf = memoryview(bytearray(256 * 1024))

    def read_range(r: NullRemote) -> None:  # one range of 1 MiB in 256 KiB reads, as a restore worker does
        rd = r.open_part(part, 0, 1 << 20)
        while rd.readinto(buf):
            pass
        rd.close()

    cases: dict[str, Callable[[Any], object]] = {
        "upload_part": lambda r: r.upload_part(part, body),
        "open_part + 4 readinto": read_range,
        "has_file": lambda r: r.has_file("x"),
    }
    n = 200_000
    for name, fn in cases.items():
        t_bare = _best(fn, bare, n)
        t_wrap = _best(fn, wrapped, n)
        print(f"{name:24s} bare {t_bare * 1e6:6.2f} us  wrapped {t_wrap * 1e6:6.2f} us  "
              f"layer {(t_wrap - t_bare) * 1e6:5.2f} us per operation")


if __name__ == "__main__":
    main()
