"""A de-duplicating keyed work queue with per-key exponential backoff, for the reconcile loop.

Keys are resources ("DatabaseInstance/postgres") or "*" for a whole pass. Adding a key that is already queued keeps
the earlier due time (de-duplication). A failed key is requeued after 1 s, 2 s, 4 s ... capped at 5 min, with +-20%
jitter so that many failures do not retry in lockstep; a success forgets its count. A new desired-state revision
supersedes every pending retry (`supersede`): a fix that lands in git is never stuck behind the backoff of the
broken version.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WHOLE = "*"


@dataclass
class Backoff:
    attempts: int
    due: float
    last_error: str


class WorkQueue:
    def __init__(
        self,
        base: float = 1.0,
        cap: float = 300.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base, self.cap, self.jitter = base, cap, jitter
        self.clock = clock
        self.rng = rng or random.Random()
        self._due: dict[str, float] = {}
        self._backoff: dict[str, Backoff] = {}
        self._cond = threading.Condition()
        self._closed = False

    def add(self, key: str, delay: float = 0.0) -> None:
        with self._cond:
            due = self.clock() + delay
            if key not in self._due or due < self._due[key]:
                self._due[key] = due
            self._cond.notify_all()

    def failed(self, key: str, error: str) -> float:
        """Record a failure; the key comes back after its backoff. Returns the delay."""
        with self._cond:
            b = self._backoff.get(key)
            attempts = (b.attempts if b else 0) + 1
            raw: float = self.base * 2.0 ** min(attempts - 1, 30)
            delay: float = min(self.cap, raw * (1 + self.rng.uniform(-self.jitter, self.jitter)))
            due = self.clock() + delay
            self._backoff[key] = Backoff(attempts, due, error)
            self._due[key] = due
            self._cond.notify_all()
            return delay

    def succeeded(self, key: str) -> None:
        with self._cond:
            self._backoff.pop(key, None)

    def waiting(self, key: str) -> Backoff | None:
        """The backoff of a key that is still waiting for its retry, or None when it may run now."""
        with self._cond:
            b = self._backoff.get(key)
            return b if b is not None and b.due > self.clock() else None

    def backoffs(self) -> dict[str, Backoff]:
        with self._cond:
            return dict(self._backoff)

    def supersede(self) -> None:
        """A new revision: every pending retry is due now and starts counting afresh."""
        with self._cond:
            self._backoff.clear()
            now = self.clock()
            for key in self._due:
                self._due[key] = now
            self._cond.notify_all()

    def get(self, timeout: float) -> set[str]:
        """Block until some keys are due (or `timeout` passes, or the queue is closed); return and remove them."""
        deadline = self.clock() + timeout
        with self._cond:
            while not self._closed:
                now = self.clock()
                ready = {k for k, due in self._due.items() if due <= now}
                if ready:
                    for k in ready:
                        del self._due[k]
                    return ready
                wake = min([deadline, *self._due.values()])
                if now >= deadline:
                    return set()
                self._cond.wait(max(0.0, wake - now))  # add, supersede and close all notify
            return set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
