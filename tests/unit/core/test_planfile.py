"""A saved plan against the plan computed again: exactly its changes, or one stale line per resource that moved."""

from __future__ import annotations

import dataclasses
import json

import pytest

from controller.core import diff, planfile
from controller.core.plan import Action
from tests.helpers import ENV, SECRET, network, redis_instance
from tests.unit.core.test_diff import APP, S, managed, state, world

VERSION = "0.1.0"


def saved(plan, st, observed) -> dict:
    return json.loads(json.dumps(planfile.build(plan, st, observed, "c0ffee", False, VERSION)))


def test_the_saved_changes_are_applied_exactly_and_a_later_change_is_left():
    before = world(managed(S, state="exited"), APP)  # kv-a stopped: a start is planned
    p = diff.diff(S, before)
    doc = saved(p, S, before)
    assert [c["action"] for c in doc["changes"]] == ["start"] and SECRET not in json.dumps(doc)
    assert set(ENV.values()).isdisjoint(json.dumps(doc).split('"'))
    # the same world: the start, exactly
    v = planfile.check(doc, diff.diff(S, before), S, before, VERSION)
    assert [(c.action, c.name) for c in v.apply] == [(Action.START, "kv-a")] and not v.stale and not v.left
    # a declaration added since (a later commit): its create is left for the next plan, the start still applies
    later = state(
        "---\n".join(
            [
                network("net-a"),
                network("iso", isolated=True),
                redis_instance("kv-a", "kv-a-db"),
                redis_instance("kv-b", "kv-b-db"),
            ]
        )
    )
    v = planfile.check(doc, diff.diff(later, before), later, before, VERSION)
    assert [c.name for c in v.apply] == ["kv-a"] and [c.name for c in v.left] == ["kv-b"] and v.declarations_moved


@pytest.mark.parametrize(
    ("now", "line"),
    [
        (lambda c: dataclasses.replace(c, id="other"), "stale: DatabaseInstance/kv-a was recreated since the plan"),
        (lambda c: dataclasses.replace(c, state="running"), "went from exited to running since the plan"),
        (lambda c: dataclasses.replace(c, image="redis:6"), "changed its image since the plan"),
    ],
)
def test_a_resource_that_moved_since_the_plan_stops_the_whole_apply(now, line):
    c = managed(S, state="exited")
    before = world(c, APP)
    doc = saved(diff.diff(S, before), S, before)
    after = world(now(c), APP)
    v = planfile.check(doc, diff.diff(S, after), S, after, VERSION)
    assert len(v.stale) == 1 and line in v.stale[0], v.stale


def test_a_removed_container_and_a_foreign_file_are_refused():
    before = world(managed(S, state="exited"), APP)
    doc = saved(diff.diff(S, before), S, before)
    gone = world(APP)
    v = planfile.check(doc, diff.diff(S, gone), S, gone, VERSION)
    assert v.stale == ("stale: DatabaseInstance/kv-a was removed since the plan",)
    with pytest.raises(planfile.PlanfileError, match=r"made by dbstate 0\.0\.9"):
        planfile.check({**doc, "dbstate": "0.0.9"}, diff.diff(S, before), S, before, VERSION)
    with pytest.raises(planfile.PlanfileError, match="made for the engine tcp://elsewhere:2376"):
        planfile.check({**doc, "engine": "tcp://elsewhere:2376"}, diff.diff(S, before), S, before, VERSION)
    with pytest.raises(planfile.PlanfileError, match="not a dbstate planfile"):
        planfile.check({"changes": []}, diff.diff(S, before), S, before, VERSION)
