"""workers.parallel: the worker pool every action runs its parts on."""

from __future__ import annotations

import threading

import pytest

from snapferry.throttle import Cancelled
from snapferry.workers import parallel


def test_every_item_runs_once_on_at_most_concurrency_threads() -> None:
    seen: list[int] = []
    threads: set[int] = set()
    lock = threading.Lock()
    # The first three items meet at a barrier: it opens only if three threads run them at
    # once, so fewer threads break it (BrokenBarrierError) instead of passing.
    together = threading.Barrier(3, timeout=60)

    def one(i: int) -> None:
        with lock:
            seen.append(i)
            threads.add(threading.get_ident())
        if i < 3:
            together.wait()

    parallel(3, range(500), one)
    assert sorted(seen) == list(range(500))
    assert len(threads) == 3


def test_first_error_stops_the_rest_and_is_raised() -> None:
    ran: list[int] = []
    stop = threading.Event()

    def one(i: int) -> None:
        ran.append(i)
        if i == 3:
            raise ValueError("part 3 failed")

    with pytest.raises(ValueError, match="part 3 failed"):
        parallel(1, list(range(10)), one, stop)
    assert ran == [0, 1, 2, 3]  # one thread, in order: nothing after the failure started
    assert stop.is_set()


def test_cancelled_items_are_not_errors() -> None:
    stop = threading.Event()
    ran: list[int] = []

    def one(i: int) -> None:
        ran.append(i)
        if i == 2:
            stop.set()  # what a lost lease or a failed transfer does
            raise Cancelled()

    parallel(1, list(range(10)), one, stop)
    assert ran == [0, 1, 2]


def test_no_items_start_no_threads() -> None:
    before = threading.active_count()
    parallel(8, [], lambda _: None)
    assert threading.active_count() == before
