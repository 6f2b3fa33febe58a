"""A Host with `mode: swarm`: what validation asks of what lives there, and a service as the diff sees a container
(the services themselves run on a real swarm in tests/e2e/test_swarm.py)."""

from __future__ import annotations

import dataclasses

from controller.adapters import desired
from controller.adapters.docker.swarm import _as_container
from controller.core import diff, labels, live, spec
from controller.core.plan import FindingType

HOST = """apiVersion: dbstate.io/v1
kind: Host
metadata: {name: sw}
spec: {endpoint: "unix:///var/run/docker.sock", mode: swarm}
"""
NET = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: n}
spec: {driver: DRIVER}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: v}
"""
PG = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: pg}
spec:
  engine: postgres
  version: "15"
  image: postgres:15.4
  containerName: pg
  networks: [{name: n}]
  volumes: [{source: v, target: /var/lib/postgresql/data}]
  env: {POSTGRES_PASSWORD: "${PW}"}
  auth: {method: scram-sha-256, user: postgres, password: "${PW}"}
EXTRA"""


def problems(driver: str, extra: str) -> set[tuple[str, str]]:
    text = "---\n".join([HOST, NET.replace("DRIVER", driver), PG.replace("EXTRA", extra)])
    loaded = desired.load_text(text, "t.yaml", {"PW": "pw-of-the-swarm-checks"})
    return {(d.field or "", d.message.split(":")[0]) for d in loaded.errors}


def test_on_a_swarm_host_networks_are_overlay_and_an_instance_names_its_node() -> None:
    assert problems("overlay", "  node: db1\n") == set()
    found = problems("bridge", "  ports: ['127.0.0.1:5432:5432']\n  policy: {upgrade: dump-restore}\n")
    paths = {p for p, _ in found}
    assert {"spec.driver", "spec.node", "spec.ports", "spec.policy.upgrade"} <= paths, found


def test_node_is_left_out_of_the_spec_hash_until_it_is_set() -> None:
    text = "---\n".join([HOST.replace("swarm", "engine"), NET.replace("DRIVER", "overlay"), PG.replace("EXTRA", "")])
    without = desired.load_text(text, "t.yaml", {"PW": "x"}).state.instances[0]
    on_engine = desired.load_text(text.replace("  networks:", "  node: db1\n  networks:", 1), "t.yaml", {"PW": "x"})
    assert [d.field for d in on_engine.errors] == ["spec.node"]  # a node only means something on a swarm
    text = text.replace("mode: engine", "mode: swarm")
    pinned = desired.load_text(text.replace("  networks:", "  node: db1\n  networks:", 1), "t.yaml", {"PW": "x"})
    inst = pinned.state.instances[0]
    assert spec.spec_hash(without) != spec.spec_hash(inst)
    assert labels.container_labels(inst, None)[labels.NODE] == "db1"
    assert labels.NODE not in labels.container_labels(without, None)


def test_a_service_is_seen_as_a_container_running_while_a_task_runs() -> None:
    service = {
        "ID": "s1",
        "Spec": {
            "Name": "pg",
            "Labels": {labels.MANAGED: "true"},
            "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "postgres:15.4",
                    "Mounts": [{"Type": "volume", "Source": "v", "Target": "/d"}],
                },
                "Networks": [{"Target": "net-id", "Aliases": ["pg"]}],
            },
        },
    }
    nets, nodes = {"net-id": "n"}, {"db1": "ready/active"}
    up = _as_container(service, [{"ServiceID": "s1", "Status": {"State": "running"}}], nets, nodes)
    assert (up.name, up.state, up.managed, up.image) == ("pg", "running", True, "postgres:15.4")
    assert up.attachment("n") is not None and up.attachment("n").aliases == ("pg",)  # type: ignore[union-attr]
    assert [(m.source, m.destination, m.rw) for m in up.mounts] == [("v", "/d", True)]
    assert up.service is not None and up.service.update_order == "stop-first"  # Swarm's default order is not
    failed = _as_container(service, [{"ServiceID": "s1", "Status": {"State": "failed"}}], nets, nodes)
    assert failed.state == "restarting"
    service["Spec"]["Mode"] = {"Replicated": {"Replicas": 0}}  # type: ignore[index]
    assert _as_container(service, [], nets, nodes).state == "exited"


def pinned(inst: spec.DatabaseInstance, service: live.Service) -> live.Container:
    """The service dbstate made for `inst`, as observed, with `service`'s facts."""
    return live.Container(
        "s1",
        "pg",
        inst.spec.image,
        "restarting",
        labels.container_labels(inst, None),
        (live.Attachment("n"),),
        (live.Mount("volume", "v", "/var/lib/postgresql/data"),),
        service=service,
    )


def test_a_drained_node_and_a_start_first_service_are_findings_never_a_move() -> None:
    text = "---\n".join([HOST, NET.replace("DRIVER", "overlay"), PG.replace("EXTRA", "  node: db1\n")])
    state = desired.load_text(text, "t.yaml", {"PW": "x"}).state
    inst = state.instances[0]

    def seen(order: str, node_state: str | None) -> live.LiveState:
        return live.LiveState(
            live.EngineInfo("h", "1", "1.41"),
            (pinned(inst, live.Service(order, "db1", node_state)),),
            (live.Network("n1", "n", "overlay", False, labels.object_labels(state.networks[0])),),
            (live.Volume("v", "local", labels.object_labels(state.volumes[0])),),
        )

    fine = diff.diff(state, seen("stop-first", "ready/active"))
    assert fine.changes == () and fine.findings == ()
    drained = diff.diff(state, seen("stop-first", "ready/drain"))
    assert [(f.type, "ready/drain" in f.message) for f in drained.findings] == [(FindingType.NODE_UNAVAILABLE, True)]
    assert drained.changes == ()  # nothing is moved, created or started elsewhere
    racy = diff.diff(state, seen("start-first", "ready/active"))
    assert [f.type for f in racy.findings] == [FindingType.CONFIG_DRIFT] and "stop-first" in racy.findings[0].message


def test_a_volume_on_a_node_that_is_down_or_does_not_answer_is_away_never_lost_nor_made_again() -> None:
    text = "---\n".join([HOST, NET.replace("DRIVER", "overlay"), PG.replace("EXTRA", "  node: db2\n")])
    state = desired.load_text(text, "t.yaml", {"PW": "x"}).state
    inst = state.instances[0]
    service = pinned(inst, live.Service("stop-first", "db2", "ready/active"))
    net = live.Network("n1", "n", "overlay", False, labels.object_labels(state.networks[0]))
    engine = live.EngineInfo("h", "1", "1.41")
    seen_before = {"v": live.Volume("v", "local", labels.object_labels(state.volumes[0])).identity}

    # the node's engine does not answer: its volume cannot be listed, and that is no loss
    unseen = live.LiveState(engine, (service,), (net,), (), frozenset({"db2"}))
    found = diff.diff(state, unseen, seen_volumes=seen_before)
    assert {(f.type, f.kind, f.name) for f in found.findings} == {
        (FindingType.NODE_UNAVAILABLE, "Volume", "v"),
        (FindingType.NODE_UNAVAILABLE, "DatabaseInstance", "pg"),
    }
    assert found.changes == ()  # no volume made elsewhere, no service touched
    # the same with a node Swarm says is down
    down = dataclasses.replace(service, service=live.Service("stop-first", "db2", "down/active"))
    found = diff.diff(state, live.LiveState(engine, (down,), (net,)), seen_volumes=seen_before)
    assert {f.type for f in found.findings} == {FindingType.NODE_UNAVAILABLE} and found.changes == ()
    # a volume of an answering node that is missing is still lost (seen before), and one never seen is created there
    found = diff.diff(state, live.LiveState(engine, (service,), (net,)), seen_volumes=seen_before)
    assert FindingType.VOLUME_LOST in {f.type for f in found.findings}
    created = diff.diff(state, live.LiveState(engine, (), (net,)))
    (make,) = [c for c in created.changes if c.kind == "Volume"]
    assert make.payload.labels[labels.NODE] == "db2"  # type: ignore[union-attr]  # the runtime makes it on that node


def test_node_engines_are_named_only_on_a_swarm_host_and_each_is_an_endpoint() -> None:
    nodes = 'nodes: {db2: {endpoint: "tcp://10.0.0.2:2376"}}'
    assert desired.load_text(HOST.replace("mode: swarm", f"mode: swarm, {nodes}"), "t.yaml", {}).errors == ()
    wrong = desired.load_text(HOST.replace("mode: swarm", f"mode: engine, {nodes}"), "t.yaml", {}).errors
    assert ["nodes are named only with mode: swarm" in d.message for d in wrong] == [True]
    bad = desired.load_text(HOST.replace("mode: swarm", 'mode: swarm, nodes: {db2: {endpoint: "db2"}}'), "t.yaml", {})
    assert [d.field for d in bad.errors] == ["spec.nodes.db2.endpoint"]


def test_an_endpoint_with_a_bad_port_or_address_is_an_error_of_its_field_never_an_internal_error() -> None:
    import io
    import tempfile

    from controller.cli import main

    for endpoint in ("tcp://h:abc", "tcp://h:99999", "tcp://[::1", "ssh://u@h:0x1", "tcp://:2376", "tcp://h:0"):
        text = HOST.replace('"unix:///var/run/docker.sock", mode: swarm', f'"{endpoint}"')
        errors = desired.load_text(text, "t.yaml", {}).errors
        assert [d.field for d in errors] == ["spec.endpoint"], (endpoint, errors)
    nodes = HOST.replace("mode: swarm", 'mode: swarm, nodes: {db2: {endpoint: "tcp://db2:70000"}}')
    assert [d.field for d in desired.load_text(nodes, "t.yaml", {}).errors] == ["spec.nodes.db2.endpoint"]
    for fine in ("tcp://10.0.0.5:2376", "tcp://[::1]:2376", "ssh://deploy@db1:2222", "ssh://db1", "tcp://h"):
        text = HOST.replace('"unix:///var/run/docker.sock", mode: swarm', f'"{fine}"')
        assert desired.load_text(text, "t.yaml", {}).errors == (), fine
    with tempfile.TemporaryDirectory() as empty:  # --docker-host is checked the same way
        out, err = io.StringIO(), io.StringIO()
        assert main(["plan", "--dir", empty, "--docker-host", "tcp://h:abc"], out, err) == 1
        assert "internal error" not in err.getvalue() and "a port is a number" in err.getvalue(), err.getvalue()
