"""Notifications: each event said once per state across passes, grouped per pass; a notifier that fails is retried,
one that hangs delays nothing. (Through Apprise to a real HTTP receiver: tests/e2e/test_run.py.)"""

from __future__ import annotations

import threading
import time

from controller.core import errors
from controller.core.plan import Action, Change, Finding, FindingType, Outcome
from controller.engine import notifying
from controller.engine.reconciler import PassReport


def report(
    outcomes: tuple[Outcome, ...] = (), found: tuple[Finding, ...] = (), health: dict[str, int] | None = None
) -> PassReport:
    return PassReport(
        "r1", "resync", "c0ffee" * 7, False, 0.1, outcomes, (), frozenset(), {}, frozenset(), 0, health or {},
        found=found,
    )  # fmt: skip


START = Change(Action.START, "DatabaseInstance", "pg", "pg-db", "container is exited")


def test_a_failure_seen_by_three_passes_is_said_once_and_its_recovery_once() -> None:
    t = notifying.Tracker()
    failed = Outcome(START, "failed", "engine error 500", 0.1)
    said = [t.of_pass(report((failed,))) for _ in range(3)]
    assert [len(e) for e in said] == [1, 0, 0]
    assert said[0][0].line == "failed: start DatabaseInstance/pg (pg-db): engine error 500"
    (back,) = t.of_pass(report((Outcome(START, "ok", "done", 0.1),)))
    assert back.line.startswith("recovered: start DatabaseInstance/pg")
    (again,) = t.of_pass(report((Outcome(START, "ok", "done", 0.1),)))  # a later repair is drift repaired, each time
    assert again.line.startswith("drift repaired: start DatabaseInstance/pg")


def test_the_first_pass_converging_is_not_drift_and_findings_open_and_resolve_once() -> None:
    t = notifying.Tracker()
    f = Finding(FindingType.VOLUME_LOST, "Volume", "pg_data", "volume pg_data was seen and is gone")
    first = t.of_pass(report((Outcome(START, "ok", "done", 0.1),), (f,)))
    assert [e.line for e in first] == ["finding volume-lost Volume/pg_data: volume pg_data was seen and is gone"]
    assert t.of_pass(report(found=(f,))) == []
    (gone,) = t.of_pass(report())
    assert gone.line == "resolved: volume-lost Volume/pg_data"


def test_an_instance_down_and_up_again() -> None:
    t = notifying.Tracker()
    assert t.of_pass(report(health={"pg": 1})) == []
    (down,) = t.of_pass(report(health={"pg": 0}))
    assert t.of_pass(report(health={"pg": 0})) == []
    (up,) = t.of_pass(report(health={"pg": 1}))
    assert (down.line, up.line) == ("instance pg is down", "instance pg is up again")


class Flaky:
    name = "flaky"

    def __init__(self, failures: int = 0, hang: threading.Event | None = None) -> None:
        self.failures, self.hang = failures, hang
        self.got: list[tuple[str, str]] = []

    def send(self, title: str, body: str) -> None:
        if self.hang is not None:
            self.hang.wait(10)
        if self.failures:
            self.failures -= 1
            raise errors.DbstateError("flaky: not delivered")
        self.got.append((title, body))


def test_a_failed_send_is_retried_with_backoff_and_a_hanging_one_delays_no_pass(monkeypatch) -> None:
    monkeypatch.setattr(notifying, "BACKOFF", 0.01)
    logs: list[dict[str, object]] = []
    flaky = Flaky(failures=2)
    n = notifying.Notifications([flaky], lambda **f: logs.append(f))
    n.after_pass(report((Outcome(START, "failed", "boom", 0.1),)))
    deadline = time.monotonic() + 5
    while not flaky.got and time.monotonic() < deadline:
        time.sleep(0.01)
    n.stop()
    (title, body), *_ = flaky.got
    assert (
        title == "dbstate: 1 event at revision c0ffeec0ffee"
        and body == "- failed: start DatabaseInstance/pg (pg-db): boom"
    )
    assert [entry["msg"] for entry in logs] == ["notification failed", "notification failed"]

    release = threading.Event()
    hung = notifying.Notifications([Flaky(hang=release)], lambda **f: None)
    t0 = time.monotonic()
    for _ in range(3):
        hung.after_pass(report((Outcome(START, "failed", "boom", 0.1),), health={"pg": 0}))
    assert time.monotonic() - t0 < 0.5  # queued, not sent in the pass
    release.set()
    hung.stop()


def test_a_secret_that_reached_a_message_is_scrubbed_before_it_is_sent() -> None:
    from tests.helpers import SECRET

    got = Flaky()
    n = notifying.Notifications([got], lambda **f: None, known_secrets=lambda: {SECRET})
    n.after_pass(report((Outcome(START, "failed", f"the server said {SECRET}", 0.1),)))
    n.stop(wait=5)
    ((_title, body),) = got.got
    assert SECRET not in body and "the server said ***" in body
