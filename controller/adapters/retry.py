"""The only tenacity policies: short, transport-level retries of one engine call. Longer retries are the work
queue's requeue with per-resource backoff; the two are never nested."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from controller.core import errors

T = TypeVar("T")
DEFAULT_BUDGET = 30.0  # seconds one engine call may spend retrying


def call(fn: Callable[[], T], budget: float = DEFAULT_BUDGET) -> T:
    """Run `fn`, retrying transient engine errors (unreachable, reset, timeout, 5xx) with exponential backoff and
    jitter (0.2 s growing to 5 s) until `budget` seconds have passed; then the last error is raised as it was.
    tenacity is imported here, on the first mutating call: a plan never pays for it."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential, wait_random

    retrying = Retrying(
        retry=retry_if_exception(errors.retryable),
        # (wait_exponential_jitter's `initial` is deprecated in tenacity 9 and its replacement is not in 8)
        wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.3),
        stop=stop_after_delay(budget),
        reraise=True,
    )
    return retrying(fn)
