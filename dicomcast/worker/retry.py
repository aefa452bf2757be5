"""The retry policy for transient failures (tenacity): exponential backoff with jitter, Retry-After
honoured, bounded by RetryConfiguration:MaxAttempts and :TotalRetryDuration, interruptible by stop.

Three retry layers nest; this is the one place that adds them up (defaults in brackets):

1. `http.RetryingTransport` (innermost): GET/HEAD only, 4 tries per request, backoff waits of at
   most 5 s (Retry-After honoured up to 30 s). Writes (PUT, the POST of a transaction) go once.
2. `worker/study_write.py`: a study whose transaction meets 412 is re-read, re-merged and written
   again, at most MAX_CONFLICT_RETRIES (5) transactions; then it raises TransientUpstreamError.
   Studies sharing a transaction (`worker/bundles.py`) that meets 412 or a 4xx are first split in
   halves and sent again (about 2·log2(n) transactions for one bad study among n), down to that
   study alone, which then takes this path.
3. `call_with_retry` (`SyncContext.retry`, outermost): one batch read, one lookup, one study: at most
   MaxAttempts (8) attempts, waits of at most 30 s (Retry-After capped there too), and no attempt
   starts once TotalRetryDuration (2 min) has passed since the first one.

Worst case for one unit of work, with the defaults:
* requests: a read 8 x 4 = 32 GETs; a study write 8 x 5 = 40 transactions, each after the first
  preceded by a re-read of the study and its Patients (GETs of up to 4 tries each).
* time: TotalRetryDuration + one wait + one attempt: 2 min + 30 s + the last attempt, which for a
  read is at most 4 requests and 3 waits of 30 s (each request bounded by httpx's per-phase
  timeouts: connect 10 s, read/write 30 s), about 6 min in all; a study's last attempt is up to 5
  transactions with their re-reads. Past that the cycle fails with its checkpoint kept and the
  runner tries again after its own backoff (availability.RETRY_CAP), without end: the process stays up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from dicomcast.errors import TransientUpstreamError
from dicomcast.logs import get_logger

T = TypeVar("T")
log = get_logger("dicomcast.retry")


class _WaitHonouringRetryAfter:
    def __init__(self, maximum: float) -> None:
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=maximum, jitter=0.5)
        self._maximum = maximum

    def __call__(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientUpstreamError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._maximum))
        return delay


def _log_retry(state: RetryCallState) -> None:
    """Debug only: an outage is logged once when it starts and ends (availability.py), not per attempt."""
    error = state.outcome.exception() if state.outcome else None
    log.debug("retrying", attempt=state.attempt_number, error=str(error), wait_s=round(state.upcoming_sleep, 2))


class _StopOnEvent(stop_base):
    """Stop retrying once a stop was requested (SIGTERM): the work in hand is abandoned, not retried."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()


def _sleep(event: threading.Event, seconds: float) -> None:
    event.wait(seconds)  # a stop request ends the wait at once


def call_with_retry(
    fn: Callable[[], T],
    *,
    max_attempts: int,
    budget: timedelta,
    stop_event: threading.Event | None = None,
    max_wait: float = 30.0,
) -> T:
    """Call `fn`, retrying TransientUpstreamError. The last error propagates when the budget is spent."""
    event = stop_event or threading.Event()

    retrying = Retrying(
        retry=retry_if_exception_type(TransientUpstreamError),
        stop=stop_any(stop_after_attempt(max_attempts), stop_after_delay(budget.total_seconds()), _StopOnEvent(event)),
        wait=_WaitHonouringRetryAfter(max_wait),
        sleep=lambda seconds: _sleep(event, seconds),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(fn)
