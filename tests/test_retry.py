"""retry.py, the one retry layer: attempts, reset on progress, backoff bounds (sleeps injected)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from snapferry.errors import RemoteError, TransientRemoteError
from snapferry.retry import RetryPolicy, retrying


class Flaky:
    """Fails with TransientRemoteError `fails` times, moving `pos` forward on the first `advances`."""

    def __init__(self, fails: int, advances: int = 0) -> None:
        self.fails = fails
        self.advances = advances
        self.calls = 0
        self.pos = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.advances:
            self.pos += 1000
        if self.calls <= self.fails:
            raise TransientRemoteError(f"reading x failed: cut after {self.pos} bytes")
        return "done"


def run(policy: RetryPolicy, f: Flaky, position: bool, slept: list[float]) -> str:
    for attempt in retrying(policy, (lambda: f.pos) if position else None, sleep=slept.append):
        with attempt:
            return f()
    raise AssertionError("retrying ended without an outcome")


def test_attempts_are_bounded_without_progress() -> None:
    slept: list[float] = []
    f = Flaky(fails=100)
    with pytest.raises(TransientRemoteError):
        run(RetryPolicy(attempts=3), f, position=False, slept=slept)
    assert f.calls == 3 and len(slept) == 2


def test_progress_resets_the_count() -> None:
    # Every attempt of the first five moves the transfer forward, then it stalls for good:
    # the count starts over after each advance, so it gives up only 3 attempts after the last.
    slept: list[float] = []
    f = Flaky(fails=100, advances=5)
    with pytest.raises(TransientRemoteError):
        run(RetryPolicy(attempts=3), f, position=True, slept=slept)
    assert f.calls == 7
    # The same failures without a position: three attempts, then it gives up.
    g = Flaky(fails=100, advances=5)
    with pytest.raises(TransientRemoteError):
        run(RetryPolicy(attempts=3), g, position=False, slept=[])
    assert g.calls == 3


def test_a_transfer_that_keeps_advancing_finishes() -> None:
    f = Flaky(fails=20, advances=20)
    assert run(RetryPolicy(attempts=2), f, position=True, slept=[]) == "done"
    assert f.calls == 21


def test_backoff_grows_exponentially_within_its_bounds() -> None:
    policy = RetryPolicy(attempts=9, initial_wait=0.5, max_wait=6.0, jitter=0.25)
    for _ in range(20):  # the jitter is random: check the bounds on many draws
        slept: list[float] = []
        with pytest.raises(TransientRemoteError):
            run(policy, Flaky(fails=100), position=False, slept=slept)
        assert len(slept) == 8
        for n, s in enumerate(slept):
            base = 0.5 * 2**n
            assert min(base, 6.0) <= s <= min(base + 0.25, 6.0), (n, s)


def test_call_retries_transient_errors_and_logs_what_it_retries(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    f = Flaky(fails=2)
    with caplog.at_level(logging.WARNING, logger="snapferry"):
        assert RetryPolicy(attempts=3).call(f, sleep=slept.append) == "done"
    assert f.calls == 3 and len(slept) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "attempt 1 failed" in lines[0] and "reading x failed" in lines[0], lines


def test_other_errors_are_not_retried() -> None:
    calls = [0]

    def denied() -> None:
        calls[0] += 1
        raise RemoteError("reading x: access denied")

    with pytest.raises(RemoteError, match="access denied"):
        RetryPolicy(attempts=5).call(denied, sleep=lambda s: None)
    assert calls[0] == 1


def test_call_counts_its_first_failure_as_attempt_one() -> None:
    """The first try runs outside tenacity; a failure there still spends one of the attempts."""
    for attempts in (1, 3):
        slept: list[float] = []
        f = Flaky(fails=10)
        with pytest.raises(TransientRemoteError):
            RetryPolicy(attempts=attempts).call(f, sleep=slept.append)
        assert f.calls == attempts and len(slept) == attempts - 1


def test_a_call_that_succeeds_at_once_never_loads_tenacity() -> None:
    """A listing or a small read that works the first time pays no retry machinery at start-up."""
    code = (
        "import sys\n"
        "from snapferry.retry import RetryPolicy\n"
        "assert RetryPolicy().call(lambda: 7) == 7\n"
        "print('tenacity' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr[-2000:]
