"""The diff on synthetic snapshots: pure and table-driven. The same rules are shown against a real engine in
tests/e2e/test_plan.py; these pin the corner cases cheaply."""

from __future__ import annotations

import dataclasses

import pytest

from controller.adapters import desired
from controller.core import diff, hosts, labels, live, spec
from controller.core.plan import Action, FindingType
from tests.helpers import ENV, consumer, network, redis_instance, volume

ENGINE = live.EngineInfo("unix:///x", "20.10", "1.41")
TEXT = "---\n".join(
    [network("net-a"), network("iso", isolated=True), redis_instance("kv-a", "kv-a-db"), consumer("app", "kv-a")]
)


def state(text: str = TEXT) -> spec.DesiredState:
    loaded = desired.load_text(text, "t.yaml", {**ENV, "PG_PASSWORD": "pw-for-the-diff"})
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    return loaded.state


def managed(s: spec.DesiredState, name: str = "kv-a", **over: object) -> live.Container:
    inst = next(i for i in s.instances if i.metadata.name == name)
    fields: dict[str, object] = {
        "id": name * 4,
        "name": inst.container_name,
        "image": inst.spec.image,
        "state": "running",
        "labels": labels.container_labels(inst, None),
        "networks": tuple(live.Attachment(a.name, a.aliases) for a in inst.spec.networks),
    }
    fields.update(over)
    return live.Container(**fields)  # type: ignore[arg-type]


def net(name: str, managed_: bool = True, **over: object) -> live.Network:
    lab = {labels.MANAGED: "true", labels.KIND: "Network", labels.NAME: name} if managed_ else {}
    return live.Network(**{"id": name, "name": name, "driver": "bridge", "internal": False, "labels": lab, **over})  # type: ignore[arg-type]


APP = live.Container("app1", "app", "app:1", "running", networks=(live.Attachment("net-a"),), env={"DB_HOST": "kv-a"})


def world(*containers: live.Container, networks: tuple[live.Network, ...] | None = None) -> live.LiveState:
    return live.LiveState(ENGINE, containers, networks if networks is not None else (net("net-a"), net("iso")))


def summary(p) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return ([(c.action.value, c.name) for c in p.changes], [(f.type.value, f.name) for f in p.findings])


S = state()
CASES = [
    ("in sync", world(managed(S), APP), False, ([], [])),
    ("stopped", world(managed(S, state="exited"), APP), False, ([("start", "kv-a")], [])),
    ("created only", world(managed(S, state="created"), APP), False, ([("start", "kv-a")], [])),
    ("restarting is left to the engine", world(managed(S, state="restarting"), APP), False, ([], [])),
    ("paused", world(managed(S, state="paused"), APP), False, ([], [("config-drift", "kv-a")])),
    ("alias gone", world(managed(S, networks=(live.Attachment("net-a"),)), APP), False, ([("connect", "kv-a")], [])),
    (
        "extra alias is fine",
        world(managed(S, networks=(live.Attachment("net-a", ("kv-a", "x")),)), APP),
        False,
        ([], []),
    ),
    (
        "orphan",
        world(
            managed(S), APP, managed(state("---\n".join([network("net-a"), redis_instance("kv-z", "z-db")])), "kv-z")
        ),
        False,
        ([], [("orphan", "kv-z")]),
    ),
    # made for a Consumer/kv-a nobody declares any more: an orphan, and in the way of the instance
    (
        "label of another kind is a conflict",
        world(managed(S, labels={**labels.container_labels(S.instances[0], None), labels.KIND: "Consumer"}), APP),
        False,
        ([], [("name-conflict", "kv-a"), ("orphan", "kv-a")]),
    ),
    (
        "consumer host wrong",
        world(
            managed(S),
            live.Container("a", "app", "app:1", "running", networks=(live.Attachment("net-a"),), env={"DB_HOST": "x"}),
        ),
        False,
        ([], [("host-mismatch", "app")]),
    ),
    (
        "consumer not inspected: no host check",
        world(managed(S), live.Container("a", "app", "app:1", "running", networks=(live.Attachment("net-a"),))),
        False,
        ([], []),
    ),
    ("network missing", world(managed(S), APP, networks=(net("net-a"),)), False, ([("create", "iso")], [])),
    (
        "public port on a managed db",
        world(managed(S, ports=(live.Port(6379, "tcp", "0.0.0.0", 6379),)), APP),
        False,
        ([], [("public-port", "kv-a-db")]),
    ),
    (
        "loopback port is fine",
        world(managed(S, ports=(live.Port(6379, "tcp", "127.0.0.1", 6379),)), APP),
        False,
        ([], []),
    ),
    ("exposed, unpublished port is fine", world(managed(S, ports=(live.Port(6379),)), APP), False, ([], [])),
]


@pytest.mark.parametrize(("case", "observed", "prune", "expected"), CASES, ids=[c[0] for c in CASES])
def test_diff(case, observed, prune, expected):
    assert summary(diff.diff(S, observed, prune=prune)) == expected


def test_unreadable_file_suppresses_orphans_and_prune():
    s = dataclasses.replace(S, unreadable_files=("broken.yaml",), complete=False)
    orphan = managed(
        state(
            "---\n".join(
                [network("net-a"), redis_instance("kv-z", "z-db", extra="  policy: {deletionProtection: false}\n")]
            )
        ),
        "kv-z",
    )
    p = diff.diff(s, world(managed(S), APP, orphan), prune=True)
    assert summary(p) == ([], [])
    assert any(n.name == "broken.yaml" for n in p.notes)


def test_prune_respects_protection_and_completeness():
    z = state(
        "---\n".join(
            [network("net-a"), redis_instance("kv-z", "z-db", extra="  policy: {deletionProtection: false}\n")]
        )
    )
    observed = world(managed(S), APP, managed(z, "kv-z"))
    assert summary(diff.diff(S, observed, prune=True)) == ([("remove", "kv-z")], [])
    incomplete = dataclasses.replace(S, complete=False)
    assert summary(diff.diff(incomplete, observed, prune=True)) == ([], [("orphan", "kv-z")])


def test_recreate_carries_no_secret_and_a_reason():
    text = TEXT.replace("aliases: [kv-a]}]", "aliases: [kv-a]}]\n  policy: {upgrade: recreate}")
    s = state(text)
    old = managed(s, labels={**labels.container_labels(s.instances[0], None), labels.SPEC_HASH: "old"})
    p = diff.diff(s, world(old, APP))
    [change] = p.changes
    assert change.action is Action.RECREATE and "spec hash" in change.reason
    assert change.details["env"] == {"REDIS_PASSWORD": "***"}
    assert "s3cr3t" not in repr(p)


def test_warn_policy_turns_changes_into_drift_findings():
    s = state(TEXT.replace("aliases: [kv-a]}]", "aliases: [kv-a]}]\n  policy: {drift: warn}"))
    p = diff.diff(s, world(managed(s, state="exited", networks=()), APP))
    assert p.changes == ()
    assert [f.type for f in p.findings] == [FindingType.DRIFT, FindingType.DRIFT]


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("postgres", "postgres"),
        ("postgres:5432", "postgres"),
        ("postgres://u:p@db:5432/x", "db"),
        ("redis://:pw@redis:6379/0", "redis"),
        ("[::1]:5432", "::1"),
        ("db/name", "db"),
        ("", ""),
        ("mysql://u:p@[::1]:3306/db", "::1"),
    ],
)
def test_host_of(value, host):
    assert hosts.host_of(value) == host


def test_a_volume_replaced_under_the_same_name_is_lost_until_acknowledged():
    s = state("---\n".join([network("net-a"), volume("kv-data"), redis_instance("kv-a", "kv-a-db", volume="kv-data")]))
    vol = live.Volume("kv-data", "local", {"io.dbstate.volume-id": "a1"})
    observed = live.LiveState(ENGINE, (), (net("net-a"),), (vol,))
    same = diff.diff(s, observed, seen_volumes={"kv-data": vol.identity})
    assert summary(same) == ([("create", "kv-a")], [])
    unknown = diff.diff(s, observed, seen_volumes={"kv-data": None})  # seen before identities were kept
    assert summary(unknown) == ([("create", "kv-a")], [])
    replaced = diff.diff(s, observed, seen_volumes={"kv-data": "an-older-identity"})
    assert summary(replaced) == ([], [("volume-lost", "kv-a"), ("volume-lost", "kv-data")])
    assert "is not the volume seen before" in next(f.message for f in replaced.findings if f.kind == "Volume")
    acked = diff.diff(
        s, observed, seen_volumes={"kv-data": "an-older-identity"}, acknowledged_lost=frozenset({"kv-data"})
    )
    assert summary(acked) == ([("create", "kv-a")], [])


def test_scope_bounds_what_a_consumer_may_be_done_to():
    from controller.core.scope import Scope

    stranger = live.Container("app1", "app", "app:1", "running", labels={"com.docker.compose.project": "wiki"})
    observed = world(managed(S), stranger)
    narrow = diff.diff(S, observed, scope=Scope())
    assert summary(narrow) == ([], [("out-of-scope", "app")])
    by_project = diff.diff(S, observed, scope=Scope(compose_projects=frozenset({"wiki"})))
    assert ("connect", "app") in summary(by_project)[0] and "out-of-scope" not in str(summary(by_project)[1])
    by_label = diff.diff(S, observed, scope=Scope(labels=frozenset({("com.docker.compose.project", "wiki")})))
    assert ("connect", "app") in summary(by_label)[0]


def test_a_use_across_engines_is_verified_against_the_published_address():
    """Engine `a`'s part of a two-engine state: the consumer uses kv-b (on `b`) through its published port, so its
    hostEnv must name the published address, not an alias it cannot resolve."""
    hosts_docs = (
        "apiVersion: dbstate.io/v1\nkind: Host\nmetadata: {name: a}\nspec: {endpoint: 'unix:///run/a.sock'}\n---\n"
        "apiVersion: dbstate.io/v1\nkind: Host\nmetadata: {name: b}\nspec: {endpoint: 'tcp://10.0.0.5:2376'}\n"
    )
    text = "---\n".join(
        [
            hosts_docs,
            network("net-a").replace("spec: {", "spec: {host: a, "),
            network("net-b").replace("spec: {", "spec: {host: b, "),
            redis_instance(
                "kv-b", "kv-b-db", "[{name: net-b, aliases: [kv-b]}]", '  host: b\n  ports: ["10.0.0.5:6379:6379"]\n'
            ),
            consumer("app", "kv-b")
            .replace("spec:\n", "spec:\n  host: a\n")
            .replace(
                "{instance: kv-b, hostEnv: DB_HOST}", '{instance: kv-b, hostEnv: DB_HOST, published: "10.0.0.5:6379"}'
            ),
        ]
    )
    from controller.core import placement

    part = placement.only(state(text), "a")
    assert [c.metadata.name for c in part.consumers] == ["app"] and part.instances == ()

    def app(db_host: str) -> live.Container:
        return live.Container(
            "a", "app", "app:1", "running", networks=(live.Attachment("net-a"),), env={"DB_HOST": db_host}
        )

    assert summary(diff.diff(part, world(app("10.0.0.5:6379"), networks=(net("net-a"),)))) == ([], [])
    found = diff.diff(part, world(app("kv-b"), networks=(net("net-a"),))).findings
    assert [(f.type, f.name) for f in found] == [(FindingType.HOST_MISMATCH, "app")] and "10.0.0.5" in found[0].message


def test_an_upgrade_pauses_the_running_consumers_in_scope_that_use_the_instance():
    from controller.core.plan import Upgrade
    from controller.core.scope import Scope
    from tests.helpers import NETWORK, VOLUME, consumer_yaml, instance_yaml

    was = state("---\n".join([NETWORK, VOLUME, instance_yaml(version="15", image="postgres:15")]))
    running = managed(was, "pg", mounts=(live.Mount("volume", "pg_data", "/var/lib/postgresql/data"),))
    upgraded = instance_yaml(
        version="17", image="postgres:17", volume="pg_data_v17", extra="  policy: {upgrade: dump-restore}\n"
    )
    users = [consumer_yaml("app", "pg"), consumer_yaml("idle", "pg"), consumer_yaml("elsewhere", "other")]
    other = instance_yaml("other", "other-db", volume=None)
    now = state("---\n".join([NETWORK, VOLUME, VOLUME.replace("pg_data", "pg_data_v17"), upgraded, other, *users]))

    def app(name: str, status: str = "running") -> live.Container:
        labels_ = {"com.docker.compose.project": "wiki"}
        return live.Container(name, name, "app:1", status, labels=labels_, networks=(live.Attachment("edge"),))

    observed = live.LiveState(ENGINE, (running, app("app"), app("idle", "exited"), app("elsewhere")), (net("edge"),))
    [change] = [c for c in diff.diff(now, observed).changes if c.action is Action.UPGRADE]
    assert isinstance(change.payload, Upgrade) and change.payload.consumers == ("app",)
    assert change.reason.endswith("; app paused for the cutover") and change.details["consumers"] == ["app"]
    # a consumer the scope does not allow is not touched: its writes fail until the new server is on its network
    [narrow] = [c for c in diff.diff(now, observed, scope=Scope()).changes if c.action is Action.UPGRADE]
    assert isinstance(narrow.payload, Upgrade) and narrow.payload.consumers == ()


@pytest.mark.parametrize(
    ("policy", "transfer", "says", "reversible"),
    [
        ("{upgrade: pg-upgrade}", "copy", "pg_upgrade --copy into pg_data_v17", True),
        ("{upgrade: pg-upgrade, upgradeTransfer: link}", "link", "can never start again: no rollback", False),
        ("{upgrade: pg-upgrade, upgradeTransfer: clone}", "clone", "reflinks", True),
    ],
)
def test_pg_upgrade_is_an_upgrade_into_the_new_volume_that_says_its_way_back(policy, transfer, says, reversible):
    from controller.core.plan import Upgrade
    from tests.helpers import NETWORK, VOLUME, instance_yaml

    was = state("---\n".join([NETWORK, VOLUME, instance_yaml(version="15", image="postgres:15")]))
    running = managed(was, "pg", mounts=(live.Mount("volume", "pg_data", "/var/lib/postgresql/data"),))
    upgraded = instance_yaml(version="17", image="postgres:17", volume="pg_data_v17", extra=f"  policy: {policy}\n")
    now = state("---\n".join([NETWORK, VOLUME, VOLUME.replace("pg_data", "pg_data_v17"), upgraded]))
    edge = (net("edge"),)
    [change] = [c for c in diff.diff(now, world(running, networks=edge)).changes if c.action is Action.UPGRADE]
    assert isinstance(change.payload, Upgrade) and change.payload.method == "pg-upgrade"
    assert says in change.reason and change.payload.moves == {"/var/lib/postgresql/data": ("pg_data", "pg_data_v17")}
    assert change.details["reversible"] is reversible and change.details["transfer"] == transfer
    # the same volume: said what to declare, nothing changed
    same = state(
        "---\n".join([NETWORK, VOLUME, instance_yaml(version="17", image="postgres:17", extra=f"  policy: {policy}\n")])
    )
    p = diff.diff(same, world(running, networks=edge))
    assert [c for c in p.changes if c.action is Action.UPGRADE] == []
    assert [f.type for f in p.findings] == [FindingType.MAJOR_UPGRADE] and "pg-upgrade" in p.findings[0].message


def test_an_upgrade_into_18s_layout_pairs_the_old_data_mount_with_the_new_volume_mounted_elsewhere():
    """PostgreSQL 18's images want their volume at /var/lib/postgresql (the cluster in 18/docker below it), 17's was
    at /var/lib/postgresql/data: the one dropped data mount and the one new volume are the move (before: a
    major-upgrade finding asking for a new volume that was declared)."""
    from controller.core.plan import Upgrade
    from tests.helpers import NETWORK, VOLUME, instance_yaml

    was = state("---\n".join([NETWORK, VOLUME, instance_yaml(version="17", image="postgres:17")]))
    running = managed(was, "pg", mounts=(live.Mount("volume", "pg_data", "/var/lib/postgresql/data"),))
    upgraded = instance_yaml(
        version="18", image="postgres:18", volume="pg_data_v18", extra="  policy: {upgrade: pg-upgrade}\n"
    ).replace("target: /var/lib/postgresql/data", "target: /var/lib/postgresql")
    now = state("---\n".join([NETWORK, VOLUME, VOLUME.replace("pg_data", "pg_data_v18"), upgraded]))
    p = diff.diff(now, world(running, networks=(net("edge"),)))
    [change] = [c for c in p.changes if c.action is Action.UPGRADE]
    assert isinstance(change.payload, Upgrade) and p.findings == ()
    assert change.payload.moves == {"/var/lib/postgresql/data": ("pg_data", "pg_data_v18")}
    # two new volumes for one dropped mount: which holds the data is not guessed
    two = upgraded.replace(
        "    - source: pg_data_v18\n      target: /var/lib/postgresql\n",
        "    - source: pg_data_v18\n      target: /var/lib/postgresql\n    - source: pg_wal\n      target: /wal\n",
    )
    assert two != upgraded
    vols = [VOLUME, VOLUME.replace("pg_data", "pg_data_v18"), VOLUME.replace("pg_data", "pg_wal")]
    p = diff.diff(state("---\n".join([NETWORK, *vols, two])), world(running, networks=(net("edge"),)))
    assert [c for c in p.changes if c.action is Action.UPGRADE] == []
    assert [f.type for f in p.findings] == [FindingType.MAJOR_UPGRADE]


def test_a_server_alone_on_a_cutover_network_is_an_interrupted_cutover_and_is_not_connected():
    """Killed after the new server started and before its data was checked: connecting it (a plain repair) would let
    clients onto data nobody checked."""
    alone = dataclasses.replace(managed(S), networks=(live.Attachment("dbstate-helper-0123456789ab"),))
    p = diff.diff(S, world(alone))
    assert [c for c in p.changes if c.target == alone.name] == []
    assert [f.type for f in p.findings if f.name == "kv-a"] == [
        FindingType.INTERRUPTED
    ] and FindingType.INTERRUPTED.blocks
    assert "rollback" in p.findings[0].message


def test_a_consumer_left_paused_is_a_finding_not_unpaused():
    """A cutover that did not finish (the controller killed mid-upgrade) can leave a consumer paused: said, with the
    command; dbstate does not unpause what it cannot tell it paused itself."""
    frozen = dataclasses.replace(APP, state="paused")
    p = diff.diff(S, world(managed(S), frozen))
    assert summary(p) == ([], [("config-drift", "app")])
    assert "docker unpause app" in p.findings[0].message
