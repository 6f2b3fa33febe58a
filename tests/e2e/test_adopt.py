"""Adopting a host as it is, built the way the seed's team built theirs: real `docker-compose` projects for the main
PostgreSQL, MariaDB and Redis on the external network `edge`, Supabase's database on an internal network with a bind
mount, application containers that use them, marker rows in every database. Then `dbstate import`, `validate`,
`plan` (nothing to change, no name-conflict) and `run`: the compose-made PostgreSQL is restarted in place (same
container id), a disconnected consumer is reconnected with its compose alias, a stray database is an unmanaged
finding, retiring compose's PostgreSQL with the command the co-managed finding gives hands it to dbstate on the same
data, every marker is still there, and no secret value is in any output, file or state database."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from devtools.engine import TEST_LABEL
from tests.e2e.helpers import dbstate, wait_for
from tests.e2e.test_run import Controller, running

PG_PASSWORD = "pg-Adopt#1@x"
MARIADB_PASSWORD = "maria-Adopt#2"
REDIS_PASSWORD = "redis-Adopt#3"
SUPA_PASSWORD = "supa-Adopt#4"
KONG_PASSWORD = "kong-Adopt#5"
SECRETS = (PG_PASSWORD, MARIADB_PASSWORD, REDIS_PASSWORD, SUPA_PASSWORD, KONG_PASSWORD)
MARK = "marker-row-before-adoption"
WRITE = f"create table if not exists m (v text); delete from m; insert into m values ('{MARK}')"  # noqa: S608
READ = "select v from m"
SUPA_DROP = "drop database if exists supabase_admin"
LABELS = f'labels: {{"{TEST_LABEL}": "1"}}'


def main_database(service: str, image: str, data: str, setting: str) -> str:
    """One of the seed's main databases: its own compose project, a named volume, the external network `edge`."""
    return f"""version: "3.8"
services:
  {service}:
    image: {image}
    container_name: {service}-{service}-1
    restart: unless-stopped
    {setting}
    volumes: ["{service}_data:{data}"]
    networks: [edge]
    {LABELS}
volumes:
  {service}_data: {{{LABELS}}}
networks:
  edge: {{external: true}}
"""


COMPOSE = {
    "postgres": main_database(
        "postgres",
        "dbstate-local/postgres:15",
        "/var/lib/postgresql/data",
        f'environment: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "{PG_PASSWORD}"}}',
    ),
    "mariadb": main_database(
        "mariadb",
        "dbstate-local/mariadb:10.11",
        "/var/lib/mysql",
        f'environment: {{MARIADB_ROOT_PASSWORD: "{MARIADB_PASSWORD}", MARIADB_DATABASE: wiki}}',
    ),
    "redis": main_database(
        "redis", "dbstate-local/redis:7.0", "/data", f'command: ["redis-server", "--requirepass", "{REDIS_PASSWORD}"]'
    ),
    "supabase": f"""version: "3.8"
services:
  db:
    image: dbstate-local/postgres:15
    container_name: supabase-db
    restart: unless-stopped
    environment: {{POSTGRES_USER: supabase_admin, POSTGRES_PASSWORD: "{SUPA_PASSWORD}"}}
    volumes: ["./data/postgres:/var/lib/postgresql/data"]
    networks: [internal]
    {LABELS}
  auth:
    image: dbstate-local/app:1
    container_name: supabase-auth
    environment: {{DB_HOST: db, DB_PASSWORD: "{SUPA_PASSWORD}"}}
    networks: [internal]
    {LABELS}
networks:
  internal: {{internal: true, {LABELS}}}
""",
    "apps": f"""version: "3.8"
services:
  n8n:
    image: dbstate-local/app:1
    container_name: n8n-n8n-1
    environment: {{DB_POSTGRESDB_HOST: postgres, DB_POSTGRESDB_PASSWORD: "{PG_PASSWORD}"}}
    networks: [edge]
    {LABELS}
  wikijs:
    image: dbstate-local/app:1
    container_name: wikijs-wikijs-1
    environment: {{DB_HOST: "mariadb:3306", DB_PASS: "{MARIADB_PASSWORD}"}}
    networks: [edge]
    {LABELS}
  cache-user:
    image: dbstate-local/app:1
    container_name: outline-outline-1
    environment: {{REDIS_URL: "redis://:{REDIS_PASSWORD}@redis:6379/0"}}
    networks: [edge]
    {LABELS}
networks:
  edge: {{external: true}}
""",
}


KONG = """services:
  db:
    image: dbstate-local/postgres:15
    environment: {POSTGRES_USER: kong, POSTGRES_PASSWORD: "${KONG_PG_PASSWORD:?set it}"}
    volumes: ["kong_data:/var/lib/postgresql/data"]
    networks: [edge]
volumes:
  kong_data: {}
networks:
  edge: {external: true}
"""


def plan_json(out: Path, env_file: Path, allow: tuple[str, ...], host: str, state: Path) -> dict[str, Any]:
    r = dbstate(
        "plan",
        "--dir",
        str(out),
        "--env-file",
        str(env_file),
        "--output",
        "json",
        *allow,
        host=host,
        state=state,
        secrets=SECRETS,
    )
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def compose(root: Path, project: str, host: str, *args: str) -> None:
    env = {**os.environ, "DOCKER_HOST": host}
    r = subprocess.run(
        ["docker-compose", "-p", project, "-f", str(root / project / "compose.yml"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"docker-compose -p {project} {' '.join(args)}: {r.stderr}"


def sql(client: docker.DockerClient, container: str, argv: list[str]) -> str:
    """Run a client in the container until it succeeds (the server may still be initialising)."""
    last: list[str] = []

    def attempt() -> tuple[str] | None:
        r = client.containers.get(container).exec_run(argv)
        last[:] = [r.output.decode(errors="replace")]
        return (r.output.decode(),) if r.exit_code == 0 else None

    try:
        return str(wait_for(attempt, timeout=120, interval=0.5)[0])
    except AssertionError as e:
        raise AssertionError(f"{container}: {argv[0]} kept failing: {last}") from e


def markers(client: docker.DockerClient) -> dict[str, str]:
    return {
        "postgres": sql(client, "postgres-postgres-1", ["psql", "-U", "app", "-d", "app", "-Atc", READ]),
        "mariadb": sql(
            client,
            "mariadb-mariadb-1",
            ["sh", "-c", f"mariadb -uroot -p'{MARIADB_PASSWORD}' wiki -N -e '{READ}'"],
        ),
        "redis": sql(client, "redis-redis-1", ["redis-cli", "-a", REDIS_PASSWORD, "--no-auth-warning", "get", "m"]),
        "supabase": sql(client, "supabase-db", ["psql", "-U", "supabase_admin", "-d", "postgres", "-Atc", READ]),
    }


@pytest.fixture
def host_built(docker_client, engine_host, tmp_path):
    """The seed's shape, made with real docker-compose; torn down (with its volumes) afterwards."""
    root = tmp_path / "services"
    for project, text in COMPOSE.items():
        (root / project).mkdir(parents=True)
        (root / project / "compose.yml").write_text(text)
    docker_client.networks.create("edge", driver="bridge", labels={TEST_LABEL: "1"})
    try:
        for project in COMPOSE:
            compose(root, project, engine_host, "up", "-d")
        sql(
            docker_client,
            "postgres-postgres-1",
            ["psql", "-U", "app", "-d", "app", "-c", WRITE],
        )
        sql(
            docker_client,
            "mariadb-mariadb-1",
            [
                "sh",
                "-c",
                f"mariadb -uroot -p'{MARIADB_PASSWORD}' wiki -e \"{WRITE}\"",
            ],
        )
        sql(docker_client, "redis-redis-1", ["redis-cli", "-a", REDIS_PASSWORD, "--no-auth-warning", "set", "m", MARK])
        # as Supabase's images do: the login's own database does not exist, `postgres` is the one to log in to
        sql(docker_client, "supabase-db", ["psql", "-U", "supabase_admin", "-d", "postgres", "-c", WRITE])
        sql(docker_client, "supabase-db", ["psql", "-U", "supabase_admin", "-d", "postgres", "-c", SUPA_DROP])
        yield root
    finally:
        for project in COMPOSE:
            subprocess.run(
                ["docker-compose", "-p", project, "-f", str(root / project / "compose.yml"), "down", "-v"],
                env={**os.environ, "DOCKER_HOST": engine_host},
                capture_output=True,
                timeout=300,
            )
        shutil.rmtree(root / "supabase" / "data", ignore_errors=True)


def test_a_compose_host_is_imported_planned_with_nothing_to_change_and_run_in_place(
    host_built, docker_client, engine_host, tmp_path
):
    out, env_file, state = tmp_path / "ds", tmp_path / "ws" / ".env", tmp_path / "state.db"
    ids = {c.name: c.id for c in docker_client.containers.list(all=True)}
    t0 = time.monotonic()
    r = dbstate("import", "--out", str(out), "--env-out", str(env_file), host=engine_host, state=state, secrets=SECRETS)
    import_seconds = time.monotonic() - t0
    assert r.code == 0, r.stdout + r.stderr
    assert "4 DatabaseInstance" in r.stdout and "4 Consumer" in r.stdout, r.stdout
    assert "4 databases recorded as adopted" in r.stdout
    assert "--allow-compose-project apps,supabase" in r.stdout
    files = sorted(p.name for p in out.iterdir())
    assert files == ["apps.yaml", "mariadb.yaml", "networks.yaml", "postgres.yaml", "redis.yaml", "supabase.yaml"]
    text = "".join((out / f).read_text() for f in files)
    for s in SECRETS:
        assert s not in text
        assert s in env_file.read_text() or s == KONG_PASSWORD  # (kong is imported later, from its compose file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "policy:\n    adopt: in-place" in (out / "postgres.yaml").read_text()
    assert "database: postgres" in (out / "supabase.yaml").read_text()  # its login's own database does not exist
    assert "supabase-db: auth.database is postgres" in r.stdout
    supabase = (out / "supabase.yaml").read_text()
    assert "type: bind" in supabase and "--allow-bind-root" in supabase  # its data stays where it is
    bind_root = str(host_built / "supabase" / "data")
    assert f"--allow-bind-root {bind_root}" in r.stdout
    again = tmp_path / "ds2"
    written, written_at = env_file.read_text(), env_file.stat().st_mtime_ns
    time.sleep(0.01)
    assert (
        dbstate(
            "import", "--out", str(again), "--env-out", str(env_file), host=engine_host, state=state, secrets=SECRETS
        ).code
        == 0
    )
    assert {f: (again / f).read_text() for f in files} == {f: (out / f).read_text() for f in files}  # deterministic
    assert env_file.read_text() == written and env_file.stat().st_mtime_ns == written_at  # nothing new: untouched
    kong = host_built / "kong"  # a compose project nobody started: --compose declares it, not adopted
    kong.mkdir()
    (kong / "compose.yml").write_text(KONG)
    (kong / ".env").write_text(f"KONG_PG_PASSWORD='{KONG_PASSWORD}'\n")
    third = tmp_path / "ds3"
    files3 = ("--compose", str(host_built / "postgres" / "compose.yml"), "--compose", str(kong / "compose.yml"))
    r = dbstate(
        "import",
        "--out",
        str(third),
        "--env-out",
        str(env_file),
        *files3,
        host=engine_host,
        state=state,
        secrets=SECRETS,
    )
    assert r.code == 0 and "not running: kong-db" in r.stdout, r.stdout + r.stderr
    assert (third / "postgres.yaml").read_text() == (out / "postgres.yaml").read_text()  # what runs wins
    assert "dbstate creates it" in (third / "kong.yaml").read_text()
    assert KONG_PASSWORD in env_file.read_text() and KONG_PASSWORD not in (third / "kong.yaml").read_text()
    assert "${KONG_PG_PASSWORD}" in (third / "kong.yaml").read_text()  # the compose file's own variable
    assert f"KONG_PG_PASSWORD='{KONG_PASSWORD}'" in env_file.read_text()
    assert all(env_file.read_text().count(s) == 1 for s in SECRETS)  # one value, one variable: never a copy
    # an env file another tool owns (the Infisical Agent's): read, never written; what it lacks goes to --env-out
    owned = (kong / ".env").read_text()
    fourth, extra = tmp_path / "ds4", tmp_path / "ws" / "extra.env"
    r = dbstate(
        "import",
        "--out",
        str(fourth),
        "--env-file",
        str(kong / ".env"),
        "--env-out",
        str(extra),
        "--compose",
        str(kong / "compose.yml"),
        host=engine_host,
        state=tmp_path / "state4.db",
        secrets=SECRETS,
    )
    assert r.code == 0, r.stdout + r.stderr
    assert (kong / ".env").read_text() == owned and KONG_PASSWORD not in extra.read_text()
    assert PG_PASSWORD in extra.read_text() and "lacks" in r.stdout and f"--env-file {kong / '.env'}" in r.stdout

    assert (
        dbstate("validate", "--dir", str(out), "--env-file", str(env_file), host=engine_host, secrets=SECRETS).code == 0
    )
    allow = ("--allow-compose-project", "apps,supabase", "--allow-bind-root", bind_root)
    t0 = time.monotonic()
    p = plan_json(out, env_file, allow, engine_host, state)
    plan_seconds = time.monotonic() - t0
    assert p["changes"] == [], p["changes"]
    found = {(f["type"], f["name"]) for f in p["findings"]}
    assert not any(t == "name-conflict" for t, _ in found), found
    assert found == {("co-managed", n) for n in ("postgres", "mariadb", "redis", "supabase-db")}, found
    print(f"import {import_seconds:.2f} s, first plan {plan_seconds:.2f} s")

    c = Controller(out, engine_host, state, tmp_path / "run.log", "--env-file", str(env_file), *allow)
    try:
        wait_for(c.ready, timeout=60)
        docker_client.containers.get("postgres-postgres-1").stop(timeout=5)
        wait_for(lambda: running(docker_client, "postgres-postgres-1"), timeout=30)
        assert docker_client.containers.get("postgres-postgres-1").id == ids["postgres-postgres-1"]  # not recreated
        docker_client.networks.get("edge").disconnect("n8n-n8n-1")
        wait_for(lambda: "edge" in docker_client.containers.get("n8n-n8n-1").attrs["NetworkSettings"]["Networks"], 30)
        aliases = docker_client.containers.get("n8n-n8n-1").attrs["NetworkSettings"]["Networks"]["edge"]["Aliases"]
        assert "n8n" in aliases  # compose's service alias kept
        docker_client.containers.run(
            "dbstate-local/redis:7.0", name="stray-redis", detach=True, labels={TEST_LABEL: "1"}, network="edge"
        )
        found = plan_json(out, env_file, allow, engine_host, tmp_path / "plan.db")["findings"]
        assert ("unmanaged-database", "stray-redis") in {(f["type"], f["name"]) for f in found}
        # retiring compose with the finding's own command: dbstate makes its own container on the same data
        retire = next(f["message"] for f in p["findings"] if f["type"] == "co-managed" and f["name"] == "postgres")
        command = retire.split("Retire it from compose with `")[1].split("`")[0]  # as the finding says it (v1)
        assert command == f"docker-compose -f {host_built / 'postgres' / 'compose.yml'} -p postgres rm -s -f postgres"
        assert "never `down -v`" in retire
        done = subprocess.run(
            ["sh", "-c", command], env={**os.environ, "DOCKER_HOST": engine_host}, capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        wait_for(lambda: running(docker_client, "postgres-postgres-1"), timeout=60)
        mine = docker_client.containers.get("postgres-postgres-1")
        assert mine.id != ids["postgres-postgres-1"] and mine.labels.get("io.dbstate.managed") == "true"
        assert "com.docker.compose.project" not in mine.labels
    finally:
        code, _ = c.stop()
        assert code == 0
    kept = {c.name: c.id for c in docker_client.containers.list(all=True) if c.name in ids}
    assert {n: i for n, i in kept.items() if n != "postgres-postgres-1"} == {
        n: i for n, i in ids.items() if n in kept and n != "postgres-postgres-1"
    }  # every other container is the one compose made: nothing recreated
    assert markers(docker_client) == {k: MARK + "\n" for k in ("postgres", "mariadb", "redis", "supabase")}
    log = (tmp_path / "run.log").read_text()
    database = state.read_bytes()
    for s in SECRETS:
        assert s not in log and s.encode() not in database


def test_dbstate_adopt_takes_over_one_hand_made_database_or_says_what_differs(docker_client, engine_host, tmp_path):
    """A Redis started by hand (the declaration matches it): a name-conflict until `dbstate adopt`, then dbstate's own
    (started again when stopped, same container). A second one with another password is not adopted."""
    from tests.e2e.helpers import ENV as TEST_ENV
    from tests.e2e.helpers import load, run_instance
    from tests.helpers import network, redis_instance, write_tree

    root = write_tree(
        tmp_path / "d",
        {
            "net.yaml": network("net-a"),
            "kv.yaml": redis_instance("kv", "kv-db") + "---\n" + redis_instance("kv2", "kv2-db"),
        },
    )
    docker_client.networks.create("net-a", labels={TEST_LABEL: "1"})
    state = load(root)
    for inst in state.instances:  # by hand: no dbstate labels, as compose or a human would
        c = run_instance(docker_client, inst)
        c.stop(timeout=1)
        c.remove()
    kv = next(i for i in state.instances if i.metadata.name == "kv")
    hand = docker_client.containers.run(
        kv.spec.image,
        list(kv.spec.command),
        name="kv-db",
        detach=True,
        network="net-a",
        environment={"REDIS_PASSWORD": TEST_ENV["TEST_REDIS_PASSWORD"]},
        labels={TEST_LABEL: "1"},
    )
    docker_client.containers.run(
        kv.spec.image,
        list(kv.spec.command),
        name="kv2-db",
        detach=True,
        network="net-a",
        environment={"REDIS_PASSWORD": "another-one"},
        labels={TEST_LABEL: "1"},
    )
    db = tmp_path / "state.db"
    p = dbstate("plan", "--dir", str(root), "--output", "json", host=engine_host, state=db).json()
    assert {(f["type"], f["name"]) for f in p["findings"]} == {("name-conflict", "kv"), ("name-conflict", "kv2")}
    r = dbstate("adopt", "kv", "--dir", str(root), host=engine_host, state=db)
    assert r.code == 0 and "nothing was recreated" in r.stdout, r.stdout + r.stderr
    r = dbstate("adopt", "kv2", "--dir", str(root), host=engine_host, state=db, secrets=("another-one",))
    assert r.code == 1 and "env REDIS_PASSWORD: differs" in r.stdout, r.stdout + r.stderr
    hand.stop(timeout=1)
    r = dbstate("apply", "--yes", "--dir", str(root), host=engine_host, state=db)
    assert r.code == 1, r.stdout  # kv2 is still not under management: not converged
    assert "Not converged: DatabaseInstance/kv2" in r.stdout
    hand.reload()
    assert hand.status == "running" and docker_client.containers.get("kv-db").id == hand.id
    # adoption is by container id: once the container is gone its marker protects nothing, and a writer collects it
    marker = f"dbstate-adopted-{hand.id[:32]}"
    assert marker in {v.name for v in docker_client.volumes.list()}
    seen = {v.name for v in docker_client.volumes.list(filters={"label": "io.dbstate.seen"})}
    hand.remove(force=True)
    r = dbstate("apply", "--yes", "--dir", str(root), host=engine_host, state=db)
    assert "create" in r.stdout and docker_client.containers.get("kv-db").id != hand.id, r.stdout + r.stderr
    left = {v.name for v in docker_client.volumes.list()}
    assert marker not in left and seen <= left  # the markers that protect data stay


def test_data_that_the_declaration_moves_is_migrated_stopped_copied_verified_never_started_empty(
    docker_client, engine_host, tmp_path
):
    """A Redis whose data is a host directory; the declaration is changed to a named volume. The plan says data-moved
    and apply does not recreate it (it would start empty); `dbstate migrate-volume` copies, verifies and recreates it
    on the volume with the data; the host directory keeps its copy."""
    from tests.e2e.helpers import ENV as TEST_ENV
    from tests.helpers import network, redis_instance, volume, write_tree

    data = tmp_path / "srv" / "kv"
    data.mkdir(parents=True)
    bind = f"  volumes: [{{type: bind, source: {data}, target: /data}}]\n"
    recreate = "  policy: {upgrade: recreate}\n"
    root = write_tree(tmp_path / "d", {"net.yaml": network("net-a"), "kv.yaml": redis_instance("kv", "kv-db") + bind})
    allow = ("--allow-bind-root", str(tmp_path / "srv"))
    db = tmp_path / "state.db"
    assert dbstate("apply", "--yes", "--dir", str(root), *allow, host=engine_host, state=db).code == 0
    password = TEST_ENV["TEST_REDIS_PASSWORD"]
    cli = ["redis-cli", "-a", password, "--no-auth-warning"]
    kv = docker_client.containers.get("kv-db")
    wait_for(lambda: kv.exec_run([*cli, "set", "m", MARK]).exit_code == 0, timeout=30)
    assert kv.exec_run([*cli, "save"]).exit_code == 0
    vol = f"kv-data-{tmp_path.name[-8:].strip('_-.') or 'x'}"  # its own: never another run's leftover
    (root / "kv.yaml").write_text(redis_instance("kv", "kv-db", volume=vol, extra=recreate))
    (root / "vol.yaml").write_text(volume(vol))
    p = dbstate("plan", "--dir", str(root), "--output", "json", *allow, host=engine_host, state=db).json()
    assert [c["action"] for c in p["changes"] if c["kind"] == "DatabaseInstance"] == []
    assert ("data-moved", "kv") in {(f["type"], f["name"]) for f in p["findings"]}
    dbstate("apply", "--yes", "--dir", str(root), *allow, host=engine_host, state=db)
    assert docker_client.containers.get("kv-db").id == kv.id  # not recreated on the empty volume

    def in_volume(script: str) -> None:
        docker_client.containers.run(
            kv.image,
            ["sh", "-c", script],
            volumes={vol: {"bind": "/to", "mode": "rw"}},
            remove=True,
            labels={TEST_LABEL: "1"},
        )

    in_volume("echo other > /to/junk")  # the destination holds something: checked before anything stops
    r = dbstate("migrate-volume", "kv", "--yes", "--dir", str(root), *allow, host=engine_host, state=db)
    assert r.code == 1 and "is not empty" in r.stdout + r.stderr and "stopping" not in r.stderr, r.stdout + r.stderr
    kv.reload()
    assert kv.status == "running" and docker_client.containers.get("kv-db").id == kv.id
    assert kv.exec_run([*cli, "get", "m"]).output.decode().strip() == MARK
    in_volume("rm /to/junk")
    r = dbstate("migrate-volume", "kv", "--yes", "--dir", str(root), *allow, host=engine_host, state=db)
    assert r.code == 0, r.stdout + r.stderr
    moved = docker_client.containers.get("kv-db")
    assert moved.id != kv.id and moved.status == "running"
    assert [m["Name"] for m in moved.attrs["Mounts"] if m["Destination"] == "/data"] == [vol]
    assert docker_client.volumes.get(vol).attrs["Labels"].get("io.dbstate.managed") == "true"
    got = wait_for(lambda: moved.exec_run([*cli, "get", "m"]).output.decode().strip() or None, timeout=30)
    assert got == MARK
    assert (data / "dump.rdb").exists()  # the old data stays where it was
    p = dbstate("plan", "--dir", str(root), "--output", "json", *allow, host=engine_host, state=db).json()
    assert p["changes"] == [] and p["findings"] == [], p
    assert docker_client.containers.list(all=True, filters={"label": "io.dbstate.helper"}) == []


CMP_COMPOSE = f"""version: "3.8"
services:
  db:
    image: dbstate-local/postgres:15
    container_name: cmp-db
    restart: always
    environment: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "{PG_PASSWORD}"}}
    volumes: ["cmp-data:/var/lib/postgresql/data"]
    networks: [net-a]
    {LABELS}
volumes:
  cmp-data: {{external: true}}
networks:
  net-a: {{external: true}}
"""


def cmp_instance(version: str = "15", volume: str = "cmp-data") -> str:
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: cmp}}
spec:
  engine: postgres
  version: "{version}"
  image: dbstate-local/postgres:{version}
  containerName: cmp-db
  networks: [{{name: net-a, aliases: [db]}}]
  volumes: [{{source: {volume}, target: /var/lib/postgresql/data}}]
  env: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${{CMP_PASSWORD}}"}}
  auth: {{method: scram-sha-256, user: app, password: "${{CMP_PASSWORD}}", database: app}}
  policy: {{adopt: in-place, upgrade: dump-restore}}
"""


def test_a_compose_made_database_is_upgraded_only_once_retired_and_compose_cannot_start_the_kept_server(
    docker_client, engine_host, tmp_path
):
    """The seed's day two: a compose-made PostgreSQL 15, adopted in place, declared 17 with dump-restore. While compose
    still manages it the upgrade is refused and the finding says what to retire; its own command, run as written
    (compose v1), retires it, dbstate makes its own container on the same data, and the upgrade runs. The kept 15 is
    inert: no compose labels, no restart policy, no network, so `docker-compose up -d` of the old file cannot start
    it beside the new server. Every marker row is there throughout."""
    from tests.helpers import network, volume, write_tree

    docker_client.networks.create("net-a", labels={TEST_LABEL: "1"})
    for v in ("cmp-data", "cmp-data-v17"):
        docker_client.volumes.create(v, labels={TEST_LABEL: "1"})
    project = tmp_path / "cmp"
    project.mkdir()
    (project / "compose.yml").write_text(CMP_COMPOSE)
    up = ["docker-compose", "-p", "cmp", "-f", str(project / "compose.yml"), "up", "-d"]
    env = {**os.environ, "DOCKER_HOST": engine_host}
    assert subprocess.run(up, env=env, capture_output=True, timeout=300).returncode == 0
    psql = ["psql", "-U", "app", "-d", "app", "-At", "-c"]
    sql(docker_client, "cmp-db", [*psql, "CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 100) g"])

    def rows() -> str:
        return sql(docker_client, "cmp-db", [*psql, "SELECT count(*) FROM marker"]).strip()

    root = write_tree(
        tmp_path / "d",
        {"net.yaml": network("net-a"), "vol.yaml": volume("cmp-data") + "---\n" + volume("cmp-data-v17")},
    )
    db = tmp_path / "state.db"

    def run(*args: str) -> Any:
        return dbstate(
            *args, "--dir", str(root), host=engine_host, state=db, env={"CMP_PASSWORD": PG_PASSWORD}, secrets=SECRETS
        )

    (root / "cmp.yaml").write_text(cmp_instance())
    assert run("apply", "--yes").code == 0
    composed = docker_client.containers.get("cmp-db").id
    (root / "cmp.yaml").write_text(cmp_instance("17", "cmp-data-v17"))
    p = run("plan", "--output", "json").json()
    assert [c for c in p["changes"] if c["kind"] == "DatabaseInstance"] == []
    [refused] = [f["message"] for f in p["findings"] if f["type"] == "major-upgrade"]
    assert "compose still manages it" in refused and "revert the image and volume change" in refused
    assert run("apply", "--yes").code == 1 and docker_client.containers.get("cmp-db").id == composed
    # the finding's advice, followed as it says: revert, retire with its own command, apply, then upgrade
    (root / "cmp.yaml").write_text(cmp_instance())
    command = refused.split("`")[1]
    assert command.startswith("docker-compose -f ") and command.endswith("-p cmp rm -s -f db"), command
    assert subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=300).returncode == 0
    assert run("apply", "--yes").code == 0
    mine = docker_client.containers.get("cmp-db")
    assert mine.id != composed and "com.docker.compose.project" not in mine.labels
    wait_for(lambda: rows() == "100", timeout=60)
    (root / "cmp.yaml").write_text(cmp_instance("17", "cmp-data-v17"))
    r = run("apply", "--yes")
    assert r.code == 0, r.stdout + r.stderr
    assert sql(docker_client, "cmp-db", [*psql, "SHOW server_version_num"]).startswith("17") and rows() == "100"
    kept = docker_client.containers.get("cmp-db.dbstate-kept-v15")
    assert kept.status == "created" or kept.status == "exited"
    assert not [k for k in kept.labels if k.startswith("com.docker.compose.")]
    assert kept.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    assert kept.attrs["HostConfig"]["NetworkMode"] == "none"
    assert [m["Name"] for m in kept.attrs["Mounts"]] == ["cmp-data"]
    # the old compose file brought up again: it cannot find the kept server, and cannot take the name
    subprocess.run(up, env=env, capture_output=True, timeout=300)
    kept.reload()
    assert kept.status in ("created", "exited")
    on_old = [
        c.name for c in docker_client.containers.list() if any(m.get("Name") == "cmp-data" for m in c.attrs["Mounts"])
    ]
    assert on_old == [] and rows() == "100"
    assert run("plan").code == 0

    # the way back: a row written to 17 after the cutover, then the upgrade's commit reverted
    sql(docker_client, "cmp-db", [*psql, "INSERT INTO marker VALUES (101)"])
    (root / "cmp.yaml").write_text(cmp_instance())
    p = run("plan", "--output", "json").json()
    assert [c for c in p["changes"] if c["kind"] == "DatabaseInstance"] == [], p["changes"]
    assert [f["type"] for f in p["findings"] if f["name"] == "cmp"] == ["rollback"], p["findings"]
    r = run("rollback", "cmp", "--yes")
    assert r.code == 1 and "holds writes made since the cutover" in r.stderr, r.stdout + r.stderr
    assert sql(docker_client, "cmp-db", [*psql, "SHOW server_version_num"]).startswith("17") and rows() == "101"
    r = run("rollback", "cmp", "--yes", "--discard-writes")
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: rows() == "100", timeout=60)
    assert sql(docker_client, "cmp-db", [*psql, "SHOW server_version_num"]).startswith("15")
    back = docker_client.containers.get("cmp-db")
    assert [m["Name"] for m in back.attrs["Mounts"]] == ["cmp-data"] and back.attrs["HostConfig"][
        "NetworkMode"
    ] != "none"
    names = sorted(c.name for c in docker_client.containers.list(all=True) if c.name.startswith("cmp-db."))
    assert len(names) == 1 and names[0].startswith("cmp-db.dbstate-kept-rolled-back-"), names
    taken = json.loads(dbstate("backups", "cmp", "--output", "json", host=engine_host, state=db).stdout)
    assert [m["reason"] for m in taken][-1] == "before rollback to cmp-db.dbstate-kept-v15"
    assert taken[-1]["counts"]["app/public.marker"] == 101  # the discarded write is in that backup
    assert run("plan").code == 0
