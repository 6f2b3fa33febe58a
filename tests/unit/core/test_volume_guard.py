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


TWO_ON_ONE = "---\n".join(
    [
        network("net-a"),
        volume("kv-data"),
        redis_instance("kv-a", "kv-a-db", volume="kv-data"),
        redis_instance("kv-b", "kv-b-db", volume="kv-data"),
    ]
)


def test_two_declarations_on_one_volume_are_an_error_at_both_unless_one_reads_only():
    from controller.adapters import desired
    from tests.helpers import ENV

    loaded = desired.load_text(TWO_ON_ONE, "t.yaml", ENV)
    errors = [e for e in loaded.errors if "spec.volumes[0].source" in str(e)]
    assert sorted(e.name for e in errors) == ["kv-a", "kv-b"], [str(e) for e in loaded.errors]
    assert all(e.line > 0 and "two database servers must never share a data directory" in str(e) for e in errors)
    assert {i.metadata.name for i in loaded.state.instances} == set()  # both held back: neither is reconciled
    mount = "volumes: [{source: kv-data, target: /data}]"
    head, tail = TWO_ON_ONE.rsplit(mount, 1)  # kv-b, the second declaration, only reads
    text = head + mount.replace("}]", ", readOnly: true}]") + tail
    loaded = desired.load_text(text, "t.yaml", ENV)
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    assert [v.read_only for i in loaded.state.instances for v in i.spec.volumes] == [False, True]


def _unchecked(text: str):
    """Both declarations as if they had validated: the diff's own rule must still hold (defence in depth)."""
    import dataclasses

    kv_b = text.split("---\n")[-1]
    a = state("---\n".join(text.split("---\n")[:-1]))
    b = state("---\n".join([network("net-a"), volume("kv-data"), kv_b]))
    return dataclasses.replace(a, instances=a.instances + b.instances)


def test_one_plan_never_creates_two_servers_on_one_volume_and_an_engine_holder_counts_too():
    both = _unchecked(TWO_ON_ONE)
    obs = live.LiveState(live.EngineInfo("x", "1", "1"), (), (net("net-a"),), (KV,))
    p = diff.diff(both, obs)
    assert [(c.action, c.name) for c in p.changes if c.kind == "DatabaseInstance"] == [(Action.CREATE, "kv-a")]
    [f] = [f for f in p.findings if f.type is FindingType.VOLUME_IN_USE]
    assert f.name == "kv-b" and "kv-a-db, which this plan also creates or starts" in f.message
    # the mixed case: one container on the engine holds the volume, two creates planned: neither is created
    p = diff.diff(both, dataclasses_replace(obs, containers=(holder("exited"),)))
    assert [c for c in p.changes if c.kind == "DatabaseInstance"] == []
    assert sorted(f.name for f in p.findings if f.type is FindingType.VOLUME_IN_USE) == ["kv-a", "kv-b"]
    # a start and a create of one volume in one plan: the start (kv-a, first by name) goes, the create waits
    stopped = managed(both, state="exited", mounts=(live.Mount("volume", "kv-data", "/data"),))
    p = diff.diff(both, dataclasses_replace(obs, containers=(stopped,)))
    assert [(c.action, c.name) for c in p.changes if c.kind == "DatabaseInstance"] == [(Action.START, "kv-a")]
    assert [f.name for f in p.findings if f.type is FindingType.VOLUME_IN_USE] == ["kv-b"]


def dataclasses_replace(obs: live.LiveState, **over: object) -> live.LiveState:
    import dataclasses

    return dataclasses.replace(obs, **over)  # type: ignore[arg-type]


def test_a_start_is_judged_by_the_mounts_the_container_has_not_by_the_declaration():
    # kv-a declares kv-data, which another container holds; its own stopped container mounts other-data
    own = managed(S, state="exited", mounts=(live.Mount("volume", "other-data", "/data"),))
    p = plan(own, holder("running"))
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == [Action.START]
    # ...and the other way round: the declaration's volume is free, but the container mounts held data
    own = managed(S, state="exited", mounts=(live.Mount("volume", "held", "/data"),))
    other = live.Container("e" * 64, "someone", "redis:7", "exited", mounts=(live.Mount("volume", "held", "/data"),))
    p = plan(own, other)
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == []
    [f] = [f for f in p.findings if f.type is FindingType.VOLUME_IN_USE]
    assert "volume held is mounted by someone (exited)" in f.message


def test_a_read_only_mount_neither_holds_nor_claims_data():
    reader = live.Container(
        "d" * 64, "report", "redis:7", "running", mounts=(live.Mount("volume", "kv-data", "/d", False),)
    )
    p = plan(reader)
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == [Action.CREATE]
