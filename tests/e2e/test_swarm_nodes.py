"""A Host with `mode: swarm` on a real two-node swarm: two private engines, each in a network namespace of its own
joined by a veth pair (two hosts on one network), the first the manager. A PostgreSQL pinned to the worker's node
label runs there: its volume is made on the worker's engine (where its data is, never an empty one on the manager),
it is probed and backed up through the worker's own engine (the Host's `spec.nodes`), and a container on the manager
reaches it across the overlay network by its alias (`endpoint_mode: dnsrr`). When the worker's engine goes away,
dbstate reports the node and moves nothing; when it comes back, the task runs there again with every marker row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from devtools import engine as devengine
from tests.e2e.helpers import dbstate, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PW = "sn-" + SECRET
IMAGE = "dbstate-local/postgres:15"
NODE = "io.dbstate.node"


@pytest.fixture(scope="module")
def nodes(images: dict[str, str], engine_host: str) -> Iterator[devengine.TwoNodeSwarm]:
    first = docker.DockerClient(base_url=engine_host, version="auto", timeout=600)
    two = devengine.TwoNodeSwarm(first, [images["postgres"]])
    try:
        yield two
    finally:
        two.close()
        first.close()


def documents(manager: str, worker: str) -> dict[str, str]:
    return {
        "host.yaml": f"""apiVersion: dbstate.io/v1
kind: Host
metadata: {{name: sn}}
spec:
  endpoint: "{manager}"
  mode: swarm
  nodes: {{db2: {{endpoint: "{worker}"}}}}
""",
        "pg.yaml": f"""apiVersion: dbstate.io/v1
kind: Network
metadata: {{name: sn-net}}
spec: {{driver: overlay}}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {{name: sn-pg-data}}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: sn-pg}}
spec:
  engine: postgres
  version: "15"
  image: {IMAGE}
  node: db2
  networks: [{{name: sn-net, aliases: [sn-db]}}]
  volumes: [{{source: sn-pg-data, target: /var/lib/postgresql/data}}]
  env: {{POSTGRES_USER: app, POSTGRES_PASSWORD: "${{SN_PASSWORD}}", POSTGRES_DB: app}}
  auth: {{method: scram-sha-256, user: app, password: "${{SN_PASSWORD}}", database: app}}
  monitoring: false
  policy: {{upgrade: recreate, backup: {{beforeChange: false}}}}
""",
    }


def run(*args: str, host: str, state: Path) -> Any:
    return dbstate(*args, host=host, state=state, env={"SN_PASSWORD": PW}, secrets=(PW,))


def psql(client: docker.DockerClient, sql: str) -> str | None:
    """`sql` in the task's container on the engine of `client` (its rows); None while there is none, or it fails."""
    tasks = client.containers.list(filters={"label": "com.docker.swarm.service.name=sn-pg"})
    if len(tasks) != 1:
        return None
    code, out = tasks[0].exec_run(["psql", "-U", "app", "-d", "app", "-Atc", sql])
    return str(out.decode().strip()) if code == 0 else None


def node_state(manager: docker.DockerClient, label: str) -> str:
    (node,) = [n for n in manager.api.nodes() if (n["Spec"].get("Labels") or {}).get(NODE) == label]
    return str(node["Status"]["State"])


def test_an_instance_on_a_worker_node_lives_probes_and_backs_up_there_and_survives_the_node_going_away(
    tmp_path: Path, nodes: devengine.TwoNodeSwarm
) -> None:
    manager, worker = nodes.engines[0].host, nodes.engines[1].host
    root = write_tree(tmp_path / "ds", documents(manager, worker))
    state = tmp_path / "state.db"
    r = run("apply", "--yes", "--dir", str(root), host=manager, state=state)
    assert r.code == 0, r.stdout + r.stderr

    # the task and its volume are on the worker; the manager holds neither
    assert [c.name.split(".")[0] for c in nodes.worker.containers.list()] == ["sn-pg"]
    assert not nodes.manager.containers.list(filters={"label": "com.docker.swarm.service.name=sn-pg"})
    made = nodes.worker.api.inspect_volume("sn-pg-data")["Labels"]
    assert made["io.dbstate.managed"] == "true" and made[NODE] == "db2"
    assert "sn-pg-data" not in [v.name for v in nodes.manager.volumes.list()]
    assert nodes.manager.api.inspect_service("sn-pg")["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    wait_for(lambda: psql(nodes.worker, "SELECT 1") == "1", timeout=90)
    psql(nodes.worker, "CREATE TABLE marker (id int primary key); INSERT INTO marker SELECT generate_series(1, 100)")
    assert psql(nodes.worker, "SELECT count(*) FROM marker") == "100"

    # a container on the manager's node reaches it across the overlay network, by its alias
    out = nodes.manager.containers.run(
        IMAGE,
        ["psql", "-h", "sn-db", "-U", "app", "-d", "app", "-Atc", "SELECT count(*) FROM marker"],
        environment={"PGPASSWORD": PW},
        network="sn-net",
        entrypoint=[],
        remove=True,
    )
    assert out.decode().strip() == "100"

    # probed through the worker's own engine; converged
    r = run("plan", "--dir", str(root), "--probe", "--output", "json", host=manager, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["changes"] == [] and r.json()["findings"] == []
    (probed,) = r.json()["probes"]
    assert probed["reachable"] is True and probed["version"].startswith("15"), probed
    r = run("backup", "sn-pg", "--dir", str(root), "--output", "json", host=manager, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)[0]["counts"]["app/public.marker"] == 100

    # the worker's engine goes away: the node is reported, nothing is moved or made on the manager
    nodes.stop_worker()
    wait_for(lambda: node_state(nodes.manager, "db2") == "down", timeout=90)
    r = run("plan", "--dir", str(root), "--output", "json", host=manager, state=state)
    found = {(f["type"], f["name"]) for f in r.json()["findings"]}
    assert ("node-unavailable", "sn-pg") in found, r.stdout + r.stderr
    assert not [c for c in r.json()["changes"] if c["name"] in ("sn-pg", "sn-pg-data")], r.stdout
    r = run("apply", "--yes", "--dir", str(root), host=manager, state=state)
    assert r.code in (0, 2), r.stdout + r.stderr
    assert not nodes.manager.containers.list(all=True, filters={"label": "com.docker.swarm.service.name=sn-pg"})
    assert "sn-pg-data" not in [v.name for v in nodes.manager.volumes.list()]

    # it comes back: the task runs on the worker again, on its own volume, with every row
    nodes.restart_worker()
    wait_for(lambda: psql(nodes.worker, "SELECT count(*) FROM marker") == "100", timeout=120)
    r = run("plan", "--dir", str(root), "--probe", "--output", "json", host=manager, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["changes"] == [] and r.json()["findings"] == []
