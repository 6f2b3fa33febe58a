"""A Host with `mode: swarm` on a real single-node swarm (a private engine of its own, `docker swarm init`): a
PostgreSQL declared there becomes a service of one replica pinned by its node label, on an attachable overlay
network, its password a Swarm secret mounted as a file (never env in the service's spec), updated stop-first. It is
probed through its task's own client; a killed task is Swarm's to restart and dbstate changes nothing; a recreate
replaces the service's spec in place, its task stopped first, and the marker rows written before are all there
after each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.types
import pytest

from devtools import engine as devengine
from tests.e2e.helpers import dbstate, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PW = "sw-" + SECRET
IMAGE = "dbstate-local/postgres:15"


@pytest.fixture(scope="module")
def swarm(images: dict[str, str], engine_host: str) -> Iterator[tuple[str, docker.DockerClient]]:
    started = devengine.start("swarm")
    client = started.client(600)
    first = docker.DockerClient(base_url=engine_host, version="auto", timeout=600)
    try:
        devengine.swarm_leave(client)  # a swarm an interrupted run left
        devengine.cleanup(client)
        devengine.copy_images(first, client, [images["postgres"]])
        devengine.swarm_init(client, ("io.dbstate.node", "db1"))
        yield started.host, client
    finally:
        first.close()
        devengine.swarm_leave(client)
        devengine.cleanup(client)
        client.close()
        started.stop()


def documents(host: str, extra: str = "") -> dict[str, str]:
    return {
        "host.yaml": f"""apiVersion: dbstate.io/v1
kind: Host
metadata: {{name: sw}}
spec: {{endpoint: "{host}", mode: swarm}}
""",
        "net.yaml": """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: sw-net}
spec: {driver: overlay}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: sw-pg-data}
""",
        "pg.yaml": f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: sw-pg}}
spec:
  engine: postgres
  version: "15"
  image: {IMAGE}
  node: db1
  networks: [{{name: sw-net, aliases: [sw-pg]}}]
  volumes: [{{source: sw-pg-data, target: /var/lib/postgresql/data}}]
  env: {{POSTGRES_USER: app, POSTGRES_PASSWORD: "${{SW_PASSWORD}}", POSTGRES_DB: app{extra}}}
  auth: {{method: scram-sha-256, user: app, password: "${{SW_PASSWORD}}", database: app}}
  monitoring: false
  policy: {{upgrade: recreate, backup: {{beforeChange: false}}}}
""",
    }


def run(*args: str, host: str, state: Path) -> Any:
    return dbstate(*args, host=host, state=state, env={"SW_PASSWORD": PW}, secrets=(PW,))


def psql(client: docker.DockerClient, sql: str, check: bool = True) -> str | None:
    """`sql` in the service's task (its rows, tab-separated); with check False, None while the server cannot."""
    tasks = client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-pg"})
    if len(tasks) != 1 and not check:
        return None
    code, out = tasks[0].exec_run(["psql", "-U", "app", "-d", "app", "-Atc", sql])
    if code != 0 and not check:
        return None
    assert code == 0, out.decode()
    return str(out.decode().strip())


def running_tasks(client: docker.DockerClient) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = client.api.tasks(filters={"service": "sw-pg"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def test_a_postgres_on_swarm_is_a_pinned_service_with_its_secret_as_a_file_and_keeps_its_rows(
    tmp_path: Path, swarm: tuple[str, docker.DockerClient]
) -> None:
    host, client = swarm
    root = write_tree(tmp_path / "ds", documents(host))
    state = tmp_path / "state.db"
    r = run("apply", "--yes", "--dir", str(root), host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr

    svc = client.api.inspect_service("sw-pg")
    body = json.dumps(svc)
    assert PW not in body  # no secret value in the service's spec
    spec = svc["Spec"]
    cs = spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1
    assert spec["UpdateConfig"]["Order"] == "stop-first"
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.io.dbstate.node == db1"]
    env = dict(e.split("=", 1) for e in cs["Env"])
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/sw-pg.")
    assert env["POSTGRES_PASSWORD_FILE"].endswith(spec["Labels"]["io.dbstate.spec-hash"])  # nothing of the value
    assert [s["File"]["Name"] for s in cs["Secrets"]] == [env["POSTGRES_PASSWORD_FILE"].rsplit("/", 1)[1]]
    net = client.api.inspect_network("sw-net")
    assert net["Driver"] == "overlay" and net["Attachable"] is True
    wait_for(lambda: psql(client, "SELECT 1", check=False) == "1", timeout=60)
    psql(client, "CREATE TABLE marker (id int primary key); INSERT INTO marker SELECT generate_series(1, 100)")

    # converged, and probed through the task's own client (the controller is on no overlay network)
    r = run("plan", "--dir", str(root), "--probe", "--output", "json", host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["changes"] == [] and r.json()["findings"] == []
    (probed,) = r.json()["probes"]
    assert probed["reachable"] is True and probed["version"].startswith("15"), probed

    # a backup reaches the task's container too (the databases' own tools, through the manager's engine)
    r = run("backup", "sw-pg", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    (taken,) = json.loads(r.stdout)
    assert taken["counts"]["app/public.marker"] == 100

    # a killed task is Swarm's to restart: dbstate plans nothing while it does, and the rows are there after
    (task,) = client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-pg"})
    task.kill()

    def replaced() -> bool:
        now = [t["Status"]["ContainerStatus"]["ContainerID"] for t in running_tasks(client)]
        return len(now) == 1 and now[0] != task.id

    wait_for(replaced, timeout=60)
    wait_for(lambda: psql(client, "SELECT count(*) FROM marker", check=False) == "100", timeout=60)
    r = run("plan", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0 and r.json()["changes"] == [], r.stdout

    # a recreate: the same service, its spec replaced after its task stopped; never two tasks on the volume
    service_id = svc["ID"]
    (root / "pg.yaml").write_text(documents(host, extra=", TZ: UTC")["pg.yaml"])
    r = run("apply", "--yes", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert [(o["action"], o["kind"]) for o in r.json()["outcomes"]] == [("recreate", "DatabaseInstance")]
    after = client.api.inspect_service("sw-pg")
    assert after["ID"] == service_id
    assert "TZ=UTC" in after["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    wait_for(lambda: psql(client, "SELECT count(*) FROM marker", check=False) == "100", timeout=60)
    assert len(running_tasks(client)) == 1
    r = run("plan", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0 and r.json()["changes"] == [], r.stdout

    # what Swarm does not repair, dbstate does: a service scaled to nothing by hand is started, one taken off its
    # network is attached again with its alias
    update(client, mode=docker.types.ServiceMode("replicated", 0))
    wait_for(lambda: not running_tasks(client), timeout=60)
    update(client, task_template=dict(client.api.inspect_service("sw-pg")["Spec"]["TaskTemplate"], Networks=[]))
    r = run("apply", "--yes", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert sorted(o["action"] for o in r.json()["outcomes"]) == ["connect", "start"]
    nets = client.api.inspect_service("sw-pg")["Spec"]["TaskTemplate"]["Networks"]
    assert [n["Aliases"] for n in nets] == [["sw-pg"]]
    wait_for(lambda: psql(client, "SELECT count(*) FROM marker", check=False) == "100", timeout=90)

    # the node that holds the volume drained: Swarm stops the task and has nowhere else to put it; dbstate says so and
    # moves, creates or starts nothing; active again, the same data serves
    availability(client, "drain")
    wait_for(lambda: not running_tasks(client), timeout=60)
    r = run("plan", "--dir", str(root), "--output", "json", host=host, state=state)
    assert [f["type"] for f in r.json()["findings"]] == ["node-unavailable"] and r.json()["changes"] == [], r.stdout
    availability(client, "active")
    wait_for(lambda: psql(client, "SELECT count(*) FROM marker", check=False) == "100", timeout=90)

    # a service someone made start-first is a finding (dbstate's own recreate stops the old task first anyway)
    update(client, update_config=docker.types.UpdateConfig(order="start-first"))
    r = run("plan", "--dir", str(root), "--output", "json", host=host, state=state)
    assert [f["type"] for f in r.json()["findings"]] == ["config-drift"], r.stdout
    assert "stop-first" in r.json()["findings"][0]["message"]
    # the finding's own advice, followed: the drift is gone
    advice = r.json()["findings"][0]["message"].split("`")[1]
    assert advice == "docker service update --update-order stop-first sw-pg"
    update(client, update_config=docker.types.UpdateConfig(order="stop-first"))
    r = run("plan", "--dir", str(root), "--output", "json", host=host, state=state)
    assert r.code == 0 and r.json()["findings"] == [] and r.json()["changes"] == [], r.stdout
    wait_for(lambda: psql(client, "SELECT count(*) FROM marker", check=False) == "100", timeout=60)


def update(client: docker.DockerClient, **changes: Any) -> None:
    """sw-pg's service changed by hand, as `docker service update` would (the rest of its spec kept)."""
    svc = client.api.inspect_service("sw-pg")
    client.api.update_service(svc["ID"], svc["Version"]["Index"], fetch_current_spec=True, **changes)


def availability(client: docker.DockerClient, value: str) -> None:
    node = client.api.nodes()[0]
    client.api.update_node(node["ID"], node["Version"]["Index"], dict(node["Spec"], Availability=value))


def test_a_service_someone_else_made_under_a_declared_name_is_a_conflict_and_never_updated(
    tmp_path: Path, swarm: tuple[str, docker.DockerClient]
) -> None:
    host, client = swarm
    theirs = client.api.create_service(
        docker.types.TaskTemplate(docker.types.ContainerSpec(IMAGE, env=["POSTGRES_PASSWORD=theirs-pw"])),
        name="sw-theirs",
        labels={"team": "other"},
    )
    try:
        wait_for(lambda: len(client.api.tasks(filters={"service": "sw-theirs", "desired-state": "running"})) == 1)
        before = client.api.inspect_service(theirs["ID"])
        docs = documents(host)
        docs["pg.yaml"] = (
            docs["pg.yaml"]
            .replace("sw-pg-data", "sw-theirs-data")
            .replace("sw-pg", "sw-theirs")
            .replace("aliases: [sw-theirs]", "aliases: [sw-theirs-db]")
        )
        docs["net.yaml"] = docs["net.yaml"].replace("sw-pg-data", "sw-theirs-data")
        root = write_tree(tmp_path / "ds", docs)
        state = tmp_path / "state.db"
        r = run("apply", "--yes", "--dir", str(root), "--output", "json", host=host, state=state)
        findings = {(f["type"], f["name"]) for f in r.json()["plan"]["findings"]}
        assert ("name-conflict", "sw-theirs") in findings, r.stdout + r.stderr
        assert not [o for o in r.json()["outcomes"] if o["kind"] == "DatabaseInstance"], r.stdout
        after = client.api.inspect_service(theirs["ID"])
        assert after["Version"] == before["Version"] and after["Spec"] == before["Spec"]  # theirs, untouched
        # its task is not taken for a container of its own (an unmanaged database named sw-theirs.1.<id>)
        assert not [f for f in findings if f[1].startswith("sw-theirs.")], r.stdout
    finally:
        client.api.remove_service(theirs["ID"])
        wait_for(lambda: not client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-theirs"}))
        for c in client.containers.list(all=True, filters={"label": "com.docker.swarm.service.name=sw-theirs"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"name": "sw-theirs-data"}):
            v.remove()


def test_import_reads_a_service_a_team_made_by_hand_and_its_first_plan_changes_nothing(
    tmp_path: Path, swarm: tuple[str, docker.DockerClient]
) -> None:
    host, client = swarm
    for svc in client.api.services():  # import reads the whole swarm: only this test's service on it
        client.api.remove_service(svc["ID"])
    wait_for(lambda: not client.containers.list(filters={"label": "com.docker.swarm.service.id"}), timeout=60)
    legacy_pw = "lg-" + SECRET
    secret = client.api.create_secret("legacy_pg_pw", legacy_pw.encode())
    client.api.create_network("sw-legacy-net", driver="overlay", attachable=True)
    service = client.api.create_service(
        docker.types.TaskTemplate(
            docker.types.ContainerSpec(
                IMAGE,
                env=["POSTGRES_USER=app", "POSTGRES_DB=app", "POSTGRES_PASSWORD_FILE=/run/secrets/legacy_pg_pw"],
                mounts=[docker.types.Mount("/var/lib/postgresql/data", "sw-legacy-data")],
                secrets=[docker.types.SecretReference(secret["ID"], "legacy_pg_pw")],
            ),
            networks=[docker.types.NetworkAttachmentConfig("sw-legacy-net", aliases=["legacy-db"])],
        ),
        name="sw-legacy",
    )
    out, env_file, state = tmp_path / "ds", tmp_path / "import.env", tmp_path / "state.db"
    try:

        def count() -> str | None:
            tasks = client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-legacy"})
            if len(tasks) != 1:
                return None
            code, found = tasks[0].exec_run(["psql", "-U", "app", "-d", "app", "-Atc", "SELECT count(*) FROM marker"])
            return found.decode().strip() if code == 0 else None

        def written() -> bool:  # retried: the image's first start runs a temporary server, then the real one
            tasks = client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-legacy"})
            sql = (
                "CREATE TABLE IF NOT EXISTS marker (id int primary key); "
                "INSERT INTO marker SELECT generate_series(1, 100) ON CONFLICT DO NOTHING"
            )
            return len(tasks) == 1 and tasks[0].exec_run(["psql", "-U", "app", "-d", "app", "-c", sql])[0] == 0

        wait_for(written, timeout=90)

        r = dbstate(
            "import", "--out", str(out), "--env-out", str(env_file), host=host, state=state, secrets=(legacy_pw,)
        )
        assert r.code == 0, r.stdout + r.stderr + "".join(p.read_text() for p in sorted(out.glob("*.yaml")))
        written = "".join(p.read_text() for p in sorted(out.glob("*.yaml")))
        assert legacy_pw not in written and "_FILE" not in written  # the secret read back, as a ${VAR}
        assert legacy_pw in env_file.read_text()
        assert "kind: Host" in written and "mode: swarm" in written
        assert "node: db1" in written and "upgrade: recreate" in written
        assert "driver: overlay" in written and "legacy-db" in written

        # adopted as it is: the first plan changes nothing, and probes it through its task with the imported login
        r = dbstate(
            "plan", "--dir", str(out), "--env-file", str(env_file), "--probe", "--output", "json",
            host=host, state=state, secrets=(legacy_pw,),
        )  # fmt: skip
        assert r.code == 0, r.stdout + r.stderr
        assert r.json()["changes"] == [], r.stdout
        # (the earlier tests' network and volume are orphans now: dbstate's, no longer declared)
        assert not [f for f in r.json()["findings"] if f["name"].startswith("sw-legacy")], r.stdout
        (probed,) = r.json()["probes"]
        assert probed["reachable"] is True, probed
        assert count() == "100"
    finally:
        client.api.remove_service(service["ID"])
        wait_for(lambda: not client.containers.list(filters={"label": "com.docker.swarm.service.name=sw-legacy"}))
        for c in client.containers.list(all=True, filters={"label": "com.docker.swarm.service.name=sw-legacy"}):
            c.remove(force=True)  # the tasks Swarm keeps as history hold the volume
        client.api.remove_secret(secret["ID"])
        client.api.remove_network("sw-legacy-net")
        for v in client.volumes.list(filters={"name": "sw-legacy-data"}):
            v.remove()
