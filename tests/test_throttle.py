"""throttle.Throttle: the shared bandwidth limit, on an injected clock."""

from __future__ import annotations

import threading

import pytest

from snapferry.throttle import Cancelled, Throttle


class Clock:
    """A clock that moves only when the throttle sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_average_rate_is_kept() -> None:
    clock = Clock()
    t = Throttle(1000, clock, clock.sleep)
    for _ in range(10):
        t.take(500)
    # 5,000 bytes at 1,000 B/s: 5 s (a fresh bucket holds no burst).
    assert sum(clock.slept) == pytest.approx(5.0)
    assert clock.now - 100.0 == pytest.approx(5.0)


def test_idle_time_is_not_saved_up_beyond_one_second() -> None:
    clock = Clock()
    t = Throttle(1000, clock, clock.sleep)
    t.take(1000)
    clock.now += 60.0  # a minute without transfers
    t.take(3000)
    # Only one second of the idle minute counts: 3,000 bytes wait 2 s, not 0.
    assert clock.slept[-1] == pytest.approx(2.0)


def test_no_limit_never_sleeps() -> None:
    clock = Clock()
    t = Throttle(0, clock, clock.sleep)
    for _ in range(100):
        t.take(1 << 30)
    t2 = Throttle(1000, clock, clock.sleep)
    t2.take(0)
    assert clock.slept == []


def test_a_set_stop_event_cancels_the_wait() -> None:
    clock = Clock()
    t = Throttle(10, clock, clock.sleep)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        t.take(1000, stop)  # 100 s of wait, cut short at once


def test_workers_share_one_budget() -> None:
    clock = Clock()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.slept.append(seconds)

    t = Throttle(1000, clock, sleep)
    threads = [threading.Thread(target=t.take, args=(1000,)) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # The clock stands still: four workers' 4,000 bytes queue behind each other,
    # whatever the order they came in.
    assert sorted(clock.slept) == pytest.approx([1.0, 2.0, 3.0, 4.0])
