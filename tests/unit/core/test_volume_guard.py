"""The volume guard, pure: a create, start or recreate never mounts data that another container (any owner, any
name) mounts while it runs or could be started."""

from __future__ import annotations

import pytest

from controller.core import diff, labels, live
from controller.core.plan import Action, FindingType
from tests.helpers import network, redis_instance, volume
from tests.unit.core.test_diff import managed, net, state

S = state("---\n".join([network("net-a"), volume("kv-data"), redis_instance("kv-a", "kv-a-db", volume="kv-data")]))
KV = live.Volume("kv-data", "local", {})


def holder(state_: str, name: str = "renamed-kv") -> live.Container:
    return live.Container("f" * 64, name, "redis:7", state_, mounts=(live.Mount("volume", "kv-data", "/data"),))


def plan(*containers: live.Container):
    return diff.diff(S, live.LiveState(live.EngineInfo("x", "1", "1"), containers, (net("net-a"),), (KV,)))


@pytest.mark.parametrize("other_state", ["running", "exited", "created"])
def test_a_create_is_held_back_while_another_container_holds_the_volume(other_state):
    p = plan(holder(other_state))
    assert [c for c in p.changes if c.kind == "DatabaseInstance"] == []
    [f] = [f for f in p.findings if f.type is FindingType.VOLUME_IN_USE]
    assert f"volume kv-data is mounted by renamed-kv ({other_state})" in f.message and "not created" in f.message


def test_a_start_is_held_back_too_and_a_dead_container_does_not_count():
    own = managed(S, state="exited", mounts=(live.Mount("volume", "kv-data", "/data"),))
    p = plan(own, holder("running"))
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == []
    assert "not started" in next(f.message for f in p.findings if f.type is FindingType.VOLUME_IN_USE)
    p = plan(own, holder("dead"))
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == [Action.START]


def test_its_own_leftover_and_a_reader_of_a_running_database_are_not_in_the_way():
    own = managed(S, state="exited", mounts=(live.Mount("volume", "kv-data", "/data"),))
    leftover = holder("exited", name="kv-a-db.dbstate-old")
    assert [c.action for c in plan(own, leftover).changes if c.kind == "DatabaseInstance"] == [Action.START]
    running = managed(S, mounts=(live.Mount("volume", "kv-data", "/data"),))
    p = plan(running, holder("running", name="backup-sidecar"))  # nothing to create or start: nothing to hold back
    assert not [f for f in p.findings if f.type is FindingType.VOLUME_IN_USE]


def test_a_new_major_version_is_never_a_plain_recreate():
    from tests.unit.core.test_diff import managed as own

    text = "---\n".join([network("net-a"), volume("kv-data"), redis_instance("kv-a", "kv-a-db", volume="kv-data")])
    recreate = "  policy: {upgrade: recreate}\n"
    old = state(text.replace("  auth:", recreate + "  auth:"))
    stale = {**labels.container_labels(old.instances[0], None), labels.SPEC_HASH: "made-from-an-older-declaration"}
    running = own(old, image="dbstate-local/redis:6.2", labels=stale)
    obs = live.LiveState(live.EngineInfo("x", "1", "1"), (running,), (net("net-a"),), (KV,))
    p = diff.diff(old, obs)
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == []
    [f] = [f for f in p.findings if f.type is FindingType.MAJOR_UPGRADE]
    assert "runs dbstate-local/redis:6.2 (redis 6)" in f.message and "(7)" in f.message
    minor = own(old, image="dbstate-local/redis:7.2", labels=stale)
    obs = live.LiveState(live.EngineInfo("x", "1", "1"), (minor,), (net("net-a"),), (KV,))
    assert [c.action for c in diff.diff(old, obs).changes if c.kind == "DatabaseInstance"] == [Action.RECREATE]


def test_postgres_18_data_mounted_where_18_keeps_nothing_is_an_error():
    from controller.adapters import desired
    from tests.helpers import ENV, instance_yaml

    text = "---\n".join([network("edge"), volume("pg_data"), instance_yaml(version="18", image="postgres:18")])
    errors = [str(e) for e in desired.load_text(text, "t.yaml", {**ENV, "PG_PASSWORD": "x"}).errors]
    assert any("spec.volumes[0].target: PostgreSQL 18 and later" in e for e in errors), errors
