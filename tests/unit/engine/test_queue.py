"""The work queue: de-duplication, exponential backoff with jitter and a cap, supersede on a new revision."""

from __future__ import annotations

import random
import threading
import time

import pytest

from controller.engine.queue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dedupe_keeps_the_earliest_due():
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add("a", delay=5)
    q.add("a", delay=1)
    q.add("a", delay=9)
    clock.now += 1
    assert q.get(timeout=0) == {"a"}
    assert q.get(timeout=0) == set()


@pytest.mark.parametrize(("attempts", "low", "high"), [(1, 0.8, 1.2), (2, 1.6, 2.4), (5, 12.8, 19.2), (12, 240, 300)])
def test_backoff_grows_with_jitter_and_a_cap(attempts, low, high):
    q = WorkQueue(clock=Clock(), rng=random.Random(attempts))
    delays = [q.failed("k", "boom") for _ in range(attempts)]
    assert low <= delays[-1] <= high
    assert max(delays) <= 300


def test_success_forgets_and_supersede_clears():
    clock = Clock()
    q = WorkQueue(clock=clock, rng=random.Random(1))
    for _ in range(4):
        q.failed("k", "boom")
    assert q.waiting("k") is not None and q.waiting("k").attempts == 4
    q.supersede()
    assert q.waiting("k") is None
    assert q.get(timeout=0) == {"k"}  # due at once
    assert 0.8 <= q.failed("k", "again") <= 1.2  # counting afresh
    q.succeeded("k")
    assert q.backoffs() == {}


def test_get_wakes_up_when_a_key_is_added():
    q = WorkQueue()
    threading.Timer(0.05, q.add, args=("x",)).start()
    t0 = time.monotonic()
    assert q.get(timeout=5) == {"x"}
    assert time.monotonic() - t0 < 2


def test_close_releases_a_waiting_get():
    q = WorkQueue()
    threading.Timer(0.05, q.close).start()
    assert q.get(timeout=5) == set()
