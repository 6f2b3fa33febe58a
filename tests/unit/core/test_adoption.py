"""Adoption in place, pure: a container someone else made is taken over when it matches its declaration (and then
treated as dbstate's own), said to differ field by field when it does not, and a name-conflict without the policy."""

from __future__ import annotations

from controller.core import adoption, diff, labels, live
from controller.core.plan import Action, FindingType
from tests.helpers import ENV, SECRET, network, redis_instance, volume
from tests.unit.core.test_diff import net, state, world

ADOPTING = "policy: {adopt: in-place}\n"
TEXT = "---\n".join([network("net-a"), volume("kv-data"), redis_instance("kv-a", "kv-a-db", volume="kv-data")])
S = state(TEXT.replace("  auth:", f"  {ADOPTING}  auth:"))
S_NEVER = state(TEXT)
INST = S.instances[0]
COMPOSE = {adoption.COMPOSE_PROJECT: "cache", adoption.COMPOSE_SERVICE: "redis"}


def composed(**over: object) -> live.Container:
    fields: dict[str, object] = {
        "id": "c0ffee" * 10,
        "name": "kv-a-db",
        "image": INST.spec.image,
        "state": "running",
        "labels": dict(COMPOSE),
        "networks": (live.Attachment("net-a", ("kv-a",)),),
        "mounts": (live.Mount("volume", "kv-data", "/data"),),
        "env": {"REDIS_PASSWORD": ENV["TEST_REDIS_PASSWORD"], "PATH": "/usr/bin"},
    }
    fields.update(over)
    return live.Container(**fields)  # type: ignore[arg-type]


def plan_of(s, c: live.Container, adopted: dict[str, adoption.Adoption] | None = None):
    observed = adoption.relabel(
        live.LiveState(world().engine, (c,), (net("net-a"),), (live.Volume("kv-data", "local", {}),)),
        adopted or {},
        {f"{i.kind}/{i.metadata.name}" for i in s.instances},
    )
    return diff.diff(s, observed)


def test_a_matching_container_is_adopted_not_recreated_and_compose_is_named():
    p = plan_of(S, composed(state="exited"))
    assert [(c.action, c.target) for c in p.changes] == [(Action.ADOPT, "kv-a-db"), (Action.START, "kv-a-db")]
    assert p.changes[0].details["container_id"] == "c0ffee" * 10
    assert [f.type for f in p.findings] == [FindingType.CO_MANAGED]
    assert "docker compose -p cache rm -s -f redis" in p.findings[0].message and "down -v" in p.findings[0].message


def test_once_adopted_it_is_dbstates_own_and_a_missing_alias_is_reconnected():
    record = adoption.Adoption("DatabaseInstance/kv-a", "c0ffee" * 10, p_hash())
    p = plan_of(S, composed(networks=(live.Attachment("net-a", ()),)), {record.key: record})
    assert [(c.action, c.details.get("reconnect")) for c in p.changes] == [(Action.CONNECT, True)]
    p = plan_of(S_NEVER, composed(), {record.key: record})  # the record, not the policy, makes it dbstate's
    assert p.changes == () and [f.type for f in p.findings] == [FindingType.CO_MANAGED]


def p_hash() -> str:
    from controller.core import spec

    return spec.spec_hash(INST)


def test_what_differs_is_said_field_by_field_and_never_a_secret():
    c = composed(
        image="dbstate-local/redis:6.2",
        mounts=(live.Mount("bind", "/srv/redis", "/data"), live.Mount("volume", "extra", "/backup")),
        env={"REDIS_PASSWORD": "not-the-declared-one"},
    )
    p = plan_of(S, c)
    assert p.changes == ()
    [f] = p.findings
    assert f.type is FindingType.ADOPTION_BLOCKED
    for part in (
        "image: runs dbstate-local/redis:6.2",
        "/data: mounts bind /srv/redis, declared volume kv-data",
        "/backup: mounts volume extra, which the declaration does not (data-moved)",
        "env REDIS_PASSWORD: differs",
    ):
        assert part in f.message, f.message
    assert "not-the-declared-one" not in f.message and SECRET not in f.message


def test_without_the_policy_it_is_a_name_conflict_that_says_how_to_adopt():
    [f] = plan_of(S_NEVER, composed()).findings
    assert f.type is FindingType.NAME_CONFLICT and "policy.adopt: in-place" in f.message
    assert "docker compose (project cache)" in f.message


def test_a_container_of_another_declaration_is_never_adopted():
    other = composed(labels={labels.MANAGED: "true", labels.KIND: "DatabaseInstance", labels.NAME: "other"})
    p = plan_of(S, other)
    assert p.changes == ()
    assert FindingType.NAME_CONFLICT in {f.type for f in p.findings} and FindingType.ADOPTION_BLOCKED not in {
        f.type for f in p.findings
    }


BIND = TEXT.replace(
    "volumes: [{source: kv-data, target: /data}]", "volumes: [{type: bind, source: /srv/kv/data, target: /data}]"
)


def test_a_bind_mount_is_declared_only_under_an_allowed_root_and_then_adopted_where_it_is():
    from controller.adapters import desired
    from controller.core.scope import Scope

    s = state(BIND.replace("  auth:", f"  {ADOPTING}  auth:"))
    c = composed(mounts=(live.Mount("bind", "/srv/kv/data", "/data"),))
    observed = live.LiveState(world().engine, (c,), (net("net-a"),), ())
    p = diff.diff(s, observed, scope=Scope())
    assert [f.type for f in p.findings] == [FindingType.OUT_OF_SCOPE]
    assert [c for c in p.changes if c.kind == "DatabaseInstance"] == []
    p = diff.diff(s, observed, scope=Scope(bind_roots=frozenset({"/srv/kv"})))
    assert [f.type for f in p.findings] == [FindingType.OUT_OF_SCOPE]  # its compose project is not allowed either
    assert "not adopted" in p.findings[0].message
    allowed = Scope(compose_projects=frozenset({c.labels[adoption.COMPOSE_PROJECT]}), bind_roots=frozenset({"/srv/kv"}))
    p = diff.diff(s, observed, scope=allowed)
    assert [c.action for c in p.changes if c.kind == "DatabaseInstance"] == [Action.ADOPT]
    for bad, message in (("data", "absolute host path"), ("/", "not / itself"), ("/srv/../etc", "no `..`")):
        loaded = desired.load_text(BIND.replace("/srv/kv/data", bad), "t.yaml", ENV)
        assert any(message in str(e) and "spec.volumes[0].source" in str(e) for e in loaded.errors), [
            str(e) for e in loaded.errors
        ]


def test_adoption_in_place_obeys_the_scope_a_foreign_container_is_never_taken_over_started_or_connected():
    from controller.core.scope import Scope

    s = state(TEXT.replace("  auth:", f"  {ADOPTING}  auth:"))
    foreign = composed(labels={"team": "billing"}, state="exited", networks=())
    observed = live.LiveState(world().engine, (foreign,), (net("net-a"),), ())
    p = diff.diff(s, observed, scope=Scope(compose_projects=frozenset({"kv"})))
    assert [f.type for f in p.findings] == [FindingType.OUT_OF_SCOPE]
    assert [c for c in p.changes if c.kind == "DatabaseInstance"] == []  # no adopt, no start, no connect
    p = diff.diff(s, observed, scope=Scope(labels=frozenset({("team", "billing")})))  # allowed: taken over
    assert {c.action for c in p.changes if c.kind == "DatabaseInstance"} == {Action.ADOPT, Action.START, Action.CONNECT}


def test_the_spec_hash_of_an_existing_declaration_never_moves():
    """Containers carry the hash they were made from: a new field that changed it would recreate every one of them
    (under policy.upgrade: recreate). `type: volume` is the default and is left out."""
    from controller.core import spec

    plain, explicit = state(TEXT), state(TEXT.replace("[{source: kv-data", "[{type: volume, source: kv-data"))
    assert spec.spec_hash(plain.instances[0]) == spec.spec_hash(explicit.instances[0]) == "46ef2ab564944612"


def test_the_retire_command_works_with_compose_v1_and_names_the_compose_files():
    c = live.Container(
        "c1",
        "kv",
        "redis:7",
        "running",
        labels={
            adoption.COMPOSE_PROJECT: "cache",
            adoption.COMPOSE_SERVICE: "redis",
            adoption.COMPOSE_VERSION: "1.29.2",
            adoption.COMPOSE_FILES: "/srv/cache/compose.yml,/srv/my files/override.yml",
        },
    )
    assert adoption.retire_command(c) == (
        "docker-compose -f /srv/cache/compose.yml -f '/srv/my files/override.yml' -p cache rm -s -f redis"
    )
    v2 = live.Container("c2", "kv", "redis:7", "running", labels={**c.labels, adoption.COMPOSE_VERSION: "2.29.1"})
    assert adoption.retire_command(v2).startswith("docker compose -f /srv/cache/compose.yml ")
