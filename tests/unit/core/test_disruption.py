"""What each change interrupts and for about how long, from the durations the state database measured."""

from __future__ import annotations

from pathlib import Path

from controller.adapters import desired, store
from controller.core import disruption
from controller.core.plan import Action, Attach, Change, Outcome
from tests.helpers import ENV, consumer, network, redis_instance

STATE = desired.load_text(
    "---\n".join([network("net-a"), redis_instance("kv-a", "kv-a-db"), consumer("app", "kv-a")]), "t.yaml", ENV
).state


def change(action: Action, kind: str = "DatabaseInstance", name: str = "kv-a", target: str = "kv-a-db", **kw) -> Change:
    return Change(action, kind, name, target, "why", kw.get("payload"))


def test_what_is_not_serving_yet_or_is_down_already_is_not_interrupted():
    for a in (Action.CREATE, Action.START, Action.ADOPT):
        d = disruption.of(change(a), STATE, {})
        assert d.interrupts == () and d.line().startswith("disrupts nothing")
    assert disruption.of(change(Action.CREATE, "Network", "net-a", "net-a"), STATE, {}).interrupts == ()
    assert disruption.of(change(Action.CONNECT, payload=Attach("net-a", ("kv-a",))), STATE, {}).interrupts == ()


def test_a_recreate_interrupts_the_server_and_its_consumers_for_the_time_it_last_took(tmp_path: Path):
    with store.Store(tmp_path / "s.db") as db:
        pid = db.begin_pass("apply", None, None)
        db.record_outcome(pid, Outcome(change(Action.RECREATE), "ok", "", 7.25))
        db.record_outcome(pid, Outcome(change(Action.RECREATE, name="kv-b", target="kv-b-db"), "ok", "", 3.0))
        db.record_outcome(pid, Outcome(change(Action.RECREATE, name="kv-c", target="kv-c-db"), "ok", "", 5.0))
        db.record_outcome(pid, Outcome(change(Action.RESTART), "failed", "", 99.0))  # failures say nothing
        measured = db.durations()
    d = disruption.of(change(Action.RECREATE), STATE, measured)
    assert d.interrupts == ("kv-a-db", "app") and d.seconds == 7.2
    assert d.line() == "interrupts kv-a-db, app for about 7 s (its last recreate took that long)"
    other = disruption.of(change(Action.RECREATE, name="kv-z", target="kv-z-db"), STATE, measured)
    assert other.seconds == 5.0 and other.basis == "the median of 3 on this engine"
    unknown = disruption.of(change(Action.RESTART), STATE, measured)
    assert unknown.seconds is None and "not measured yet" in unknown.line()
    reconnect = disruption.of(change(Action.CONNECT, payload=Attach("net-a", ("kv-a",), reconnect=True)), STATE, {})
    assert reconnect.interrupts == ("kv-a-db",)
    removed = disruption.of(change(Action.REMOVE, name="gone", target="gone-db"), STATE, {})
    assert removed.interrupts == ("gone-db",) and "no longer declared" in removed.basis
