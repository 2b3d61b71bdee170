"""Attacks of round 3 on backup's parallel(): N threads pull from one shared iterator.
An iterator that fails must fail the call, not end one thread quietly while the others
see the iterator exhausted and the call returns as if every item ran."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snapferry.workers import parallel


def test_an_iterator_that_raises_fails_parallel_instead_of_ending_it_early() -> None:
    done: list[int] = []

    def items() -> Iterator[int]:
        yield from range(5)
        raise OSError(5, "Input/output error", "/snap/data/x")

    with pytest.raises(OSError, match="Input/output error"):
        parallel(3, items(), done.append)
    assert sorted(done) == [0, 1, 2, 3, 4]
