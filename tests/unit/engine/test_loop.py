"""The loop around a real reconciler on the fakes of its ports: it survives any pass (an unexpected exception is
logged, counted and retried), acts only while it holds the lease, and logs each desired-state error once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.adapters.prometheus import render
from controller.core import errors
from controller.core.options import PassOptions
from controller.engine.loop import Loop
from controller.engine.metrics import Metrics
from controller.engine.queue import WorkQueue
from controller.engine.reconciler import Reconciler
from tests.fakes import FakeEngine, MemoryHistory, TextSource
from tests.helpers import NETWORK, SECRET, VOLUME, instance_yaml

STATE = "---\n".join([NETWORK, VOLUME, instance_yaml()])


class Logs:
    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []
        self.lock = threading.Lock()

    def __call__(self, **fields: object) -> None:
        with self.lock:
            self.lines.append(fields)

    def messages(self, msg: str) -> list[dict[str, object]]:
        with self.lock:
            return [line for line in self.lines if line.get("msg") == msg]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def start_loop(loop: Loop) -> threading.Thread:
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    return t


def make(engine: FakeEngine, text: str = STATE, **kw: object) -> tuple[Loop, Logs, Metrics]:
    logs, metrics = Logs(), Metrics()
    r = Reconciler(TextSource(text, {"PG_PASSWORD": SECRET}), engine, engine, MemoryHistory(), PassOptions("run"))
    queue = WorkQueue(base=0.05, cap=0.2)  # fast retries for the test
    loop = Loop(r, resync=60.0, queue=queue, metrics=metrics, log=logs, **kw)  # type: ignore[arg-type]
    return loop, logs, metrics


def test_an_unexpected_exception_in_a_pass_is_survived_and_the_next_pass_converges():
    engine = FakeEngine()
    engine.fail_next("observe", KeyError("a bug in an adapter"))
    loop, logs, metrics = make(engine)
    t = start_loop(loop)
    try:
        wait_for(lambda: "pg-db" in engine.containers and engine.containers["pg-db"].state == "running")
        wait_for(lambda: loop.ready)
    finally:
        loop.stop()
        t.join(5)
    assert not t.is_alive()
    (failed,) = logs.messages("pass failed")
    assert failed["error"] == "unexpected KeyError: 'a bug in an adapter'" and failed["retry_in"] is not None
    assert metrics.passes["error"] == 1 and metrics.passes["ok"] >= 1
    assert 'dbstate_passes_total{host="default",result="error"} 1.0' in render(metrics)


def test_an_exception_raised_while_recording_status_does_not_end_the_loop():
    engine = FakeEngine()
    loop, logs, _ = make(engine)
    calls = {"n": 0}
    original = loop.reconciler.record_status

    def flaky(report, backoffs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        original(report, backoffs)

    loop.reconciler.record_status = flaky  # type: ignore[method-assign]
    t = start_loop(loop)
    try:
        wait_for(lambda: calls["n"] >= 2)
    finally:
        loop.stop()
        t.join(5)
    assert logs.messages("pass failed")[0]["error"] == "unexpected OSError: disk full"
    assert engine.containers["pg-db"].state == "running"


def test_an_unreachable_engine_makes_the_loop_not_ready_and_it_retries():
    engine = FakeEngine()
    engine.fail_next("observe", errors.EngineUnavailable("cannot reach the Docker engine"), times=2)
    loop, logs, metrics = make(engine)
    t = start_loop(loop)
    try:
        wait_for(lambda: loop.ready)
    finally:
        loop.stop()
        t.join(5)
    assert len(logs.messages("pass failed")) == 2 and metrics.engine_up == 1


@dataclass
class Other:
    holder: str
    expires: float


class FakeLease:
    def __init__(self) -> None:
        self.holder = "me"
        self.other: Other | None = Other("someone-else", time.time() + 60)
        self.released = False

    def hold(self) -> Other | None:
        return self.other

    def held(self) -> bool:
        return self.other is None

    def release(self) -> None:
        self.released = True


def test_nothing_is_done_without_the_lease_and_everything_once_it_is_held():
    engine, lease = FakeEngine(), FakeLease()
    loop, logs, metrics = make(engine, lease=lease, lease_ttl=0.3)
    t = start_loop(loop)
    try:
        wait_for(
            lambda: logs.messages(
                "another dbstate run holds the engine lease: not acting until it stops or its lease expires"
            )
        )
        time.sleep(0.3)
        assert engine.calls == [] and not loop.is_ready() and metrics.leader == 0
        lease.other = None
        wait_for(lambda: "pg-db" in engine.containers)
        wait_for(loop.is_ready)
        assert metrics.leader == 1
    finally:
        loop.stop()
        t.join(5)
    assert lease.released


class UnreachableLease(FakeLease):
    """The engine does not answer the lease's renewals until `back` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.other, self.back = None, False

    def hold(self) -> Other | None:
        if not self.back:
            raise errors.EngineUnavailable("cannot reach the Docker engine at tcp://10.0.0.9:2376 (connection refused)")
        return None

    def held(self) -> bool:
        return self.back


def test_an_engine_that_cannot_hold_its_lease_fails_its_passes_reported_and_backed_off():
    engine, lease = FakeEngine(), UnreachableLease()
    history = MemoryHistory()
    r = Reconciler(TextSource(STATE, {"PG_PASSWORD": SECRET}), engine, engine, history, PassOptions("run"))
    logs, metrics = Logs(), Metrics()
    loop = Loop(r, queue=WorkQueue(base=0.05, cap=0.2), metrics=metrics, log=logs, lease=lease, lease_ttl=0.4)
    t = start_loop(loop)
    try:
        wait_for(lambda: len(logs.messages("pass failed")) >= 3)
        assert len(logs.messages("cannot renew the lease")) == 1  # once per outage, not once per renewal
        assert engine.calls == [] and metrics.engine_up == 0 and not loop.is_ready()
        failed = [p for p in history.passes.values() if p.get("error")]
        assert failed and "connection refused" in failed[0]["error"]  # in the history: status and the web view
        lease.back = True
        wait_for(lambda: "pg-db" in engine.containers)
        wait_for(loop.is_ready)
    finally:
        loop.stop()
        t.join(5)


def test_an_unreachable_engine_is_retried_at_its_backoff_not_in_a_tight_loop():
    """A red team saw ~60,000 "pass failed" lines a second while each said retry_in=...: a pass that could not run
    never counted as one, so the resync was always due."""
    engine, lease = FakeEngine(), UnreachableLease()
    r = Reconciler(TextSource(STATE, {"PG_PASSWORD": SECRET}), engine, engine, MemoryHistory(), PassOptions("run"))
    logs = Logs()
    queue = WorkQueue(base=0.2, cap=0.4)
    loop = Loop(r, resync=60.0, queue=queue, metrics=Metrics(), log=logs, lease=lease, lease_ttl=0.4)
    t = start_loop(loop)
    try:
        time.sleep(1.5)
        failed = len(logs.messages("pass failed"))
        assert 2 <= failed <= 10, failed  # backoff of 0.2 s growing to 0.4 s: a handful in 1.5 s, not thousands
    finally:
        loop.stop()
        t.join(5)


def test_a_desired_state_error_is_logged_once_not_once_per_pass():
    broken = instance_yaml("kv", "kv-db", volume=None).replace("engine: postgres", "engine: nosuchdb")
    engine = FakeEngine()
    loop, logs, _ = make(engine, "---\n".join([STATE, broken]))
    for trigger in ("start", "resync", "resync"):
        loop.one_pass(trigger)
    errors_logged = logs.messages("desired state error: held back, nothing torn down")
    assert len(errors_logged) == 1 and errors_logged[0]["resource"] == "DatabaseInstance/kv"
    assert errors_logged[0]["file"] == "state.yaml" and errors_logged[0]["field"] == "spec.engine"


def test_a_burst_of_events_is_one_pass_and_a_crash_loop_backs_off():
    engine = FakeEngine()
    loop, logs, _ = make(engine)
    loop.one_pass("start")
    assert engine.containers["pg-db"].state == "running"
    for action in ("kill", "die", "stop"):  # one change, several events: one pass
        loop.engine_event("container", action, "pg-db")
    assert loop.queue.get(timeout=1.0) == {"*"} and loop.queue.get(timeout=0.3) == set()
    key = "DatabaseInstance/pg"
    for _ in range(3):  # it keeps dying: the third die within the window makes it crash-looping
        engine.kill("pg-db")
        loop.engine_event("container", "die", "pg-db")
    backoff = loop.queue.backoffs()[key]
    assert backoff.attempts == 1 and "crash-looping: pg-db died 3 times" in backoff.last_error
    assert logs.messages("crash-looping: restarts back off")
    report = loop.one_pass("resync")  # the start waits for its retry; nothing else is blocked
    assert report is not None and report.pending == (key,) and engine.containers["pg-db"].state == "exited"
    loop.queue.backoffs()[key].due = 0.0  # its retry is due: restarted, and still crash-looping...
    loop.one_pass("retry")
    assert engine.containers["pg-db"].state == "running"
    engine.kill("pg-db")
    loop.engine_event("container", "die", "pg-db")  # ...so the next restart waits twice as long
    assert loop.queue.backoffs()[key].attempts == 2
    time.sleep(0.2)  # drain what is due by now: the second die's pass (asked before it was crash-looping), the retry
    loop.queue.get(timeout=0.1)
    loop.engine_event("network", "disconnect", "edge", "pg-db")  # its attachments coming and going: no pass
    assert loop.queue.get(timeout=0.3) == set()
    loop.engine_event("network", "disconnect", "edge", "someone-else")  # another container's: a pass
    assert loop.queue.get(timeout=1.0) == {"*"}


def test_crash_looping_ends_only_once_it_has_run_a_whole_window(monkeypatch):
    from controller.engine import loop as loop_module

    monkeypatch.setattr(loop_module, "CRASH_LOOP_WINDOW", 0.3)
    engine = FakeEngine()
    loop, logs, _ = make(engine)
    loop.one_pass("start")
    key = "DatabaseInstance/pg"
    for _ in range(3):
        engine.kill("pg-db")
        loop.engine_event("container", "die", "pg-db")
    time.sleep(0.4)  # no death for a window, but only because it is not running: still crash-looping
    loop.queue.backoffs()[key].due = time.monotonic() + 60  # its retry is far away
    report = loop.one_pass("resync")
    assert report is not None and key in report.drifted and key in loop.queue.backoffs()
    engine.start("pg-db")  # it runs (started by hand) and does not die for a whole window
    time.sleep(0.4)
    loop.one_pass("resync")
    assert key not in loop.queue.backoffs() and logs.messages("no longer crash-looping")
