"""The one retry layer: how many attempts a failed remote operation gets, and how long to wait.

The SDKs are set to one attempt per request (remotes/*), so every retry in a run
is decided here: the actions wrap a whole part or range (a body cut short
mid-stream resumes from the byte where it stopped), and the cloud backends wrap
the single requests the actions do not (listings, small files, deletes) with
`RetryPolicy.call`. Backends only say which errors are worth a retry, by raising
TransientRemoteError (remotes/_cloud.py classifies them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .errors import TransientRemoteError

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

    def call(self, fn: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
        """fn(), retried on TransientRemoteError: for one request that is not part of a transfer."""
        try:
            return fn()  # most requests succeed at once: only a failed one loads and runs tenacity
        except TransientRemoteError as e:
            failed = [e]

        def again() -> T:
            if failed:  # tenacity's attempt 1 is the failure above: logged, waited and counted as before
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
