"""The retry policy: how many attempts a failed remote operation gets, and how long to wait.

One setting (`--retries`, RetryPolicy.attempts) and one place that applies it: the
retry layer over the remote (remotes/retrying.py), which is the only caller of
`call`/`after`. The SDKs make one attempt per request, the backends only say which
errors are worth a retry (TransientRemoteError, classified in remotes/_cloud.py),
and the actions never loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .errors import TransientRemoteError

# Attempts of a single request (a listing, a small file, a delete) are at most this many
# of the policy's: such a request restarts no transfer, and a wrong or dead endpoint is
# then reported in seconds (0.5 + 1 s of waits) instead of after the transfers' full
# backoff. Transfers (uploads, reads, copies) get all of `attempts`.
REQUEST_ATTEMPTS = 3

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

log = logging.getLogger("snapferry")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per operation, and exponential backoff with jitter between them:
    the n-th wait is initial_wait * 2**(n-1) plus up to `jitter` seconds, at most max_wait."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 20.0
    jitter: float = 1.0

    def for_requests(self) -> RetryPolicy:
        """This policy for single requests: at most REQUEST_ATTEMPTS attempts."""
        if self.attempts <= REQUEST_ATTEMPTS:
            return self
        return RetryPolicy(REQUEST_ATTEMPTS, self.initial_wait, self.max_wait, self.jitter)

    def call(self, fn: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
        """fn(), retried on TransientRemoteError."""
        try:
            return fn()  # most requests succeed at once: only a failed one loads and runs tenacity
        except TransientRemoteError as e:
            return self.after(e, fn, sleep)

    def after(self, failure: TransientRemoteError, fn: Callable[[], T],
              sleep: Callable[[float], None] = time.sleep) -> T:
        """The retries of an operation whose first attempt, made bare, failed with `failure`.

        The bare first attempt is the start-up and per-part optimisation of the whole
        layer: tenacity's per-call state (a Retrying, a RetryCallState, a Future with its
        Condition) was a fifth of a worker's time in a backup of 30,000 small parts, and
        importing it a tenth of a nothing-changed run. The loop sees `failure` as its own
        attempt 1, so the attempts, waits and log lines are the policy's all the same."""
        failed: list[BaseException] = [failure]

        def again() -> T:
            if failed:
                raise failed.pop()
            return fn()

        result: T = retrying(self, sleep=sleep)(again)
        return result


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    # Logged at the first failure, so a stalled read is never waited out in silence.
    log.warning(
        "retrying after a transient error (attempt %d failed, next in %.1f s): %s", state.attempt_number, wait, exc
    )


def retrying(
    policy: RetryPolicy,
    position: Callable[[], int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """Retry transient errors; with `position`, an attempt that moved it forward resets the count,
    so a long transfer over a flaky link is not abandoned while it still advances."""
    # tenacity (and the asyncio and tornado probes it runs) is loaded by the first transfer,
    # not at start-up: a nothing-changed run moves no part and never needs it.
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

    limit = max(1, policy.attempts)
    if position is None:
        stop: Callable[[RetryCallState], bool] = stop_after_attempt(limit)
    else:
        seen = [position(), 0]  # last position, attempt number at which it last advanced

        def stop(state: RetryCallState) -> bool:
            now = position()
            if now != seen[0]:
                seen[0], seen[1] = now, state.attempt_number - 1
            return state.attempt_number - seen[1] >= limit

    return Retrying(
        retry=retry_if_exception_type(TransientRemoteError),
        stop=stop,
        wait=wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter),
        before_sleep=_log_retry,
        sleep=sleep,
        reraise=True,
    )
