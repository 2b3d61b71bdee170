"""Bounded retries with exponential backoff and jitter, for whole transfers.

The SDKs retry single requests; this wraps a whole part or range so a body cut
short mid-stream resumes from the byte where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from .errors import TransientRemoteError

log = logging.getLogger("snapferry")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 20.0


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying after a transient error (attempt %d): %s", state.attempt_number, exc)


def retrying(policy: RetryPolicy, position: Callable[[], int] | None = None) -> Retrying:
    """Retry transient errors; with `position`, an attempt that moved it forward resets the count,
    so a long transfer over a flaky link is not abandoned while it still advances."""
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
        wait=wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait),
        before_sleep=_log_retry,
        reraise=True,
    )
