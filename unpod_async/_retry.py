"""Retry policy: what is retried, how long to wait, and when to give up.

The only module that imports tenacity; nothing of tenacity leaks out of it. A caller sees the
last attempt's own typed error, never a ``RetryError``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from ._errors import (
    APIConnectionError,
    APIStatusError,
    BusinessLogicError,
    DeadlineExceededError,
    RateLimitError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    headline,
)

T = TypeVar("T")

logger = logging.getLogger("unpod_async")

# 206 messages that mean "this will never work": everything else with 206 is transient.
_PERMANENT_206 = (
    "invalid space token",
    "you don't have access",
    "you do not have access",
    "access denied",
    "permission",
    "not found",
)


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """One retry about to wait, as the log record of it carries it (``record.unpod_retry``):
    a display can show "retrying page 1 (attempt 3/6, next in 1.2 s): ..." from it."""

    page: int | None
    attempt: int  # the attempt that comes after the wait, 2 .. attempts
    attempts: int
    wait: float
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 5
    retry_delay: float = 0.5
    max_retry_delay: float = 8.0
    max_retry_after: float = 120.0
    # False for a read whose 206 is already known to be the answer (a piece of a page one
    # stored task poisons): every other passing fault is still retried.
    retry_business_errors: bool = True

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("retry_delay", "max_retry_delay", "max_retry_after"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def is_permanent_206(message: str | None) -> bool:
    text = (message or "").strip().lower()
    return any(marker in text for marker in _PERMANENT_206)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Garbage, ``nan``, ``inf`` and negative values mean "not said" (``None``); a date in the
    past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def should_retry(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether one failed attempt is worth another."""
    if isinstance(exc, DeadlineExceededError):
        return False
    if isinstance(exc, RateLimitError):
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    if isinstance(exc, BusinessLogicError):
        return exc.transient and policy.retry_business_errors
    if isinstance(exc, ServerError):
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    if isinstance(exc, APIStatusError):
        return False
    if isinstance(exc, ResponseTooLargeError):
        return False
    return isinstance(exc, APIConnectionError | ResponseDecodeError)


def retry_delay(policy: RetryPolicy, retry_number: int, exc: BaseException | None) -> float:
    """Exponential backoff with jitter, raised to what a ``Retry-After`` asked for.

    The first retry of a failure that says nothing of load (a 5xx, a transient 206, a reset,
    a bad body) comes soon, at a quarter of ``retry_delay``: most are one-offs, and a pull's
    pages wait on it. From the second retry on the backoff doubles from ``retry_delay``. A
    429 (the server asking to slow down) backs off from ``retry_delay`` at once.
    """
    if retry_number == 1 and not isinstance(exc, RateLimitError):
        base = min(policy.max_retry_delay, policy.retry_delay / 4)
    else:
        exponent = min(max(retry_number - 2, 0), 60)
        base = min(policy.max_retry_delay, policy.retry_delay * 2.0**exponent)
    delay = base * (0.5 + random.random() / 2)  # "equal jitter": never less than half
    asked: float | None = getattr(exc, "retry_after", None)
    if asked is not None:
        delay = max(delay, min(asked, policy.max_retry_after))
    return delay


def describe(exc: BaseException) -> str:
    """What went wrong with one attempt, in a few words (``HTTP 503: Service Unavailable``,
    ``cannot connect to host:443: Connection refused``)."""
    if isinstance(exc, APIStatusError):
        return headline(exc.status_code, exc.message)
    message = getattr(exc, "message", None)
    return str(message) if message else f"{type(exc).__name__}: {exc}"


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    page: int | None,
    clock: Callable[[], float],
    deadline: float | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, fails for good, or runs out of retries or time.

    ``on_retry(error, wait)`` is called before each wait (statistics, the shared 429 pause).
    """
    # Most requests succeed at once: try before building a retryer (measured ~10% of a
    # CPU-bound pull). A retryable failure is then replayed as the retryer's first attempt,
    # so tenacity handles it exactly as if it had made that attempt itself.
    first_error: Exception | None = None
    try:
        return await attempt()
    except Exception as exc:
        if not should_retry(exc, policy):
            raise
        first_error = exc

    async def replay_then_attempt() -> T:
        nonlocal first_error
        if first_error is not None:
            error, first_error = first_error, None
            raise error
        return await attempt()

    retryer = _retryer(policy, page=page, clock=clock, deadline=deadline, on_retry=on_retry)
    result: T = await retryer(replay_then_attempt)
    return result


def _retryer(
    policy: RetryPolicy,
    *,
    page: int | None,
    clock: Callable[[], float],
    deadline: float | None,
    on_retry: Callable[[BaseException, float], None] | None,
) -> tenacity.AsyncRetrying:
    """The tenacity retryer of one request: ``policy``'s retries, within ``deadline``."""
    # The transient 206 an attempt answered, if any: a page one stored task poisons answers
    # it every time, a proxy's passing fault in between or last does not change what it is.
    fetch_failed: BusinessLogicError | None = None

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > policy.max_retries:
            return True
        return deadline is not None and clock() + state.upcoming_sleep >= deadline

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return retry_delay(policy, state.attempt_number, exc)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        nonlocal fetch_failed
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        if isinstance(exc, BusinessLogicError):
            fetch_failed = exc
        wait_s = state.upcoming_sleep
        notice = RetryNotice(
            page, state.attempt_number + 1, policy.max_retries + 1, wait_s, describe(exc)
        )
        logger.info(
            "retrying page %s (attempt %d of %d) after %s; waiting %.2fs",
            page,
            notice.attempt,
            notice.attempts,
            notice.reason,
            wait_s,
            extra={"unpod_retry": notice},
        )
        if on_retry is not None:
            on_retry(exc, wait_s)

    def give_up(state: tenacity.RetryCallState) -> Any:
        # Called only once ``stop`` said so: with retries left, it was the deadline.
        assert state.outcome is not None
        exc = state.outcome.exception()
        if exc is not None and state.attempt_number <= policy.max_retries:
            raise DeadlineExceededError(
                f"deadline reached while retrying after {describe(exc)}", page=page
            )
        if fetch_failed is not None and not isinstance(exc, BusinessLogicError):
            raise fetch_failed from exc  # the page's own failure, not the last passing fault
        return state.outcome.result()  # re-raises the last attempt's own error

    return tenacity.AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception(lambda exc: should_retry(exc, policy)),
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )
