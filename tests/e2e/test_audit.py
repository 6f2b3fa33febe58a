"""Probes in the plan, `dbstate audit` and `run`'s health, against real PostgreSQL 15 and 17, MariaDB and Redis
servers in the private engine: each problem gives exactly its finding, audit reports the versions the servers
themselves report, a database started by hand is listed as unmanaged with its version, and no password is printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import psycopg
import pymysql
import pytest
import redis

from tests.e2e.helpers import REPO, dbstate, demo_env, network, wait_for
from tests.e2e.test_run import Controller
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine
PW = "probe-" + SECRET
WRONG = "wrong-" + SECRET
ENV = {"PROBE_PASSWORD": PW, "PROBE_WRONG": WRONG}
SECRETS = (SECRET, PW, WRONG)
PROBE_TYPES = {"unhealthy", "version-mismatch", "auth-weak", "version-inconsistent"}


def pg(
    name: str,
    *,
    version: str = "15",
    image: str = "dbstate-local/postgres:15",
    tier: str = "dedicated",
    auth: str = "PROBE_PASSWORD",
    extra: str = "",
) -> str:
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: {name}, labels: {{dbstate-test: "1", tier: {tier}}}}}
spec:
  engine: postgres
  version: "{version}"
  image: {image}
  containerName: {name}-db
  networks: [{{name: net-a, aliases: [{name}]}}]
  env: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${{PROBE_PASSWORD}}"}}
  auth: {{method: scram-sha-256, user: app, password: "${{{auth}}}", database: app}}
{extra}"""


def kv(name: str, *, requirepass: bool = True, auth: str = "PROBE_PASSWORD", extra: str = "") -> str:
    command = (
        '  command: ["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]\n' if requirepass else ""
    )
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: {name}, labels: {{dbstate-test: "1"}}}}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: {name}-db
  networks: [{{name: net-a, aliases: [{name}]}}]
  env: {{REDIS_PASSWORD: "${{PROBE_PASSWORD}}"}}
{command}  auth: {{method: password, password: "${{{auth}}}"}}
{extra}"""


def plan_json(root: Path, host: str, state: Path, *extra: str) -> dict[str, Any]:
    r = dbstate(
        "plan",
        "--dir",
        str(root),
        "--probe",
        "--output",
        "json",
        *extra,
        host=host,
        env=ENV,
        state=state,
        secrets=SECRETS,
    )
    assert r.code in (0, 2), r.stdout + r.stderr
    return dict(json.loads(r.stdout))


def by_instance(doc: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in doc["findings"]:
        out.setdefault(f["name"], []).append(f["type"])
    return {k: sorted(v) for k, v in out.items()}


def ip(client: docker.DockerClient, name: str, net: str = "net-a") -> str:
    return str(client.containers.get(name).attrs["NetworkSettings"]["Networks"][net]["IPAddress"])


def test_each_problem_gives_exactly_its_finding(engine_host, docker_client, tmp_path):
    docker_client.images.get("dbstate-local/postgres:15").tag("dbstate-local/postgres", "stable")  # no version in tag
    root = write_tree(
        tmp_path / "d",
        {
            "net.yaml": network("net-a"),
            "ok.yaml": pg("pg-ok") + "---\n" + kv("kv-ok"),
            "wrong.yaml": pg("pg-wrong", auth="PROBE_WRONG"),
            "stopped.yaml": pg("pg-stopped"),
            "trust.yaml": pg("pg-trust"),
            "open.yaml": kv("kv-open", requirepass=False),
            "v16.yaml": pg("pg-v16", version="16", image="dbstate-local/postgres:stable"),
            "shared.yaml": pg("pg-a", tier="shared")
            + "---\n"
            + pg("pg-b", tier="shared", version="17", image="dbstate-local/postgres:17"),
        },
    )
    state = tmp_path / "state.db"
    r = dbstate("apply", "--dir", str(root), "--yes", host=engine_host, env=ENV, state=state, secrets=SECRETS)
    assert r.code == 0, r.stdout + r.stderr
    healthy = {"pg-ok", "kv-ok", "pg-stopped", "pg-trust", "kv-open", "pg-v16", "pg-a", "pg-b"}

    def all_up() -> bool:
        doc = plan_json(root, engine_host, state)
        return {p["instance"] for p in doc["probes"] if p["reachable"]} == healthy

    wait_for(all_up, timeout=90, interval=1)
    docker_client.containers.get("pg-stopped-db").stop(timeout=5)
    trust = docker_client.containers.get("pg-trust-db")
    trust.exec_run(["sh", "-c", "sed -i '1i host all all all trust' /var/lib/postgresql/data/pg_hba.conf"])
    trust.kill(signal="SIGHUP")  # postgres is PID 1: reload its configuration

    def settled() -> dict[str, Any] | None:
        doc = plan_json(root, engine_host, state)
        return doc if "auth-weak" in by_instance(doc).get("pg-trust", []) else None

    doc = wait_for(settled, timeout=20, interval=1)
    assert by_instance(doc) == {
        "pg-wrong": ["unhealthy"],
        "pg-stopped": ["unhealthy"],
        "pg-trust": ["auth-weak"],
        "kv-open": ["auth-weak"],
        "pg-v16": ["version-mismatch"],
        "pg-a": ["version-inconsistent"],
        "pg-b": ["version-inconsistent"],
    }
    messages = {(f["name"], f["type"]): f["message"] for f in doc["findings"]}
    assert "password authentication failed" in messages[("pg-wrong", "unhealthy")]
    assert "container pg-stopped-db is exited" in messages[("pg-stopped", "unhealthy")]
    assert "pg_hba.conf line 1: host connections use trust" in messages[("pg-trust", "auth-weak")]
    assert "no requirepass" in messages[("kv-open", "auth-weak")]
    assert "reports postgres 15." in messages[("pg-v16", "version-mismatch")]
    assert "pg-a 15 (server), pg-b 17 (server)" in messages[("pg-a", "version-inconsistent")]
    versions = {p["instance"]: p["version"] for p in doc["probes"]}
    assert versions["pg-b"].startswith("17.") and versions["pg-a"].startswith("15.")
    assert [(c["action"], c["name"]) for c in doc["changes"]] == [("start", "pg-stopped")]
    # the text plan says the same, and names no password
    r = dbstate("plan", "--dir", str(root), "--probe", host=engine_host, env=ENV, state=state, secrets=SECRETS)
    assert "unhealthy DatabaseInstance/pg-wrong" in r.stdout and "Probes (what the servers say):" in r.stdout
    # N consecutive failures, counted in the state database
    fresh = tmp_path / "fresh.db"
    assert "pg-wrong" not in by_instance(plan_json(root, engine_host, fresh, "--unhealthy-after", "2"))
    assert by_instance(plan_json(root, engine_host, fresh, "--unhealthy-after", "2"))["pg-wrong"] == ["unhealthy"]
    # without --probe, only what the desired state itself declares: pg-a 15 and pg-b 17 are shared
    r = dbstate("plan", "--dir", str(root), "--output", "json", host=engine_host, env=ENV, state=state, secrets=SECRETS)
    assert by_instance(json.loads(r.stdout)) == {"pg-a": ["version-inconsistent"], "pg-b": ["version-inconsistent"]}


def test_restart_after_failed_probes_is_opt_in_and_backs_off(engine_host, docker_client, tmp_path):
    root = write_tree(
        tmp_path / "d",
        {
            "net.yaml": network("net-a"),
            "kv.yaml": kv("kv-r", auth="PROBE_WRONG", extra="  policy: {restartAfterFailedProbes: 1}\n")
            + "---\n"
            + kv("kv-n", auth="PROBE_WRONG"),
        },
    )
    state = tmp_path / "state.db"
    assert dbstate("apply", "--dir", str(root), "--yes", host=engine_host, env=ENV, state=state).code == 0

    def started(name: str) -> str:
        return str(docker_client.containers.get(name).attrs["State"]["StartedAt"])

    wait_for(lambda: _try(lambda: redis.Redis(host=ip(docker_client, "kv-r-db"), password=PW).ping()), timeout=20)
    restarts = []
    for _ in range(3):  # failures 1, 2, 3: restarts after 1 and 2 (K, 2K), not after 3
        before = started("kv-r-db"), started("kv-n-db")
        r = dbstate(
            "apply",
            "--dir",
            str(root),
            "--yes",
            "--probe",
            "--output",
            "json",
            host=engine_host,
            env=ENV,
            state=state,
            secrets=SECRETS,
        )
        assert r.code == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        restarts.append([c["name"] for c in doc["plan"]["changes"] if c["action"] == "restart"])
        assert started("kv-n-db") == before[1]  # no policy: never restarted
        assert (started("kv-r-db") != before[0]) == bool(restarts[-1])
    assert restarts == [["kv-r"], ["kv-r"], []]


def test_audit_of_the_running_example_and_of_databases_started_by_hand(engine_host, docker_client, tmp_path):
    demo = demo_env()
    secrets = (*SECRETS, *(v for k, v in demo.items() if "PASSWORD" in k or "SECRET" in k))
    args = ("--dir", str(REPO / "examples/local"), "--env-file", str(REPO / "examples/local/demo.env"))
    state = tmp_path / "state.db"
    r = dbstate("apply", *args, "--yes", host=engine_host, state=state, secrets=secrets)
    assert r.code == 0, r.stdout + r.stderr

    def audit(*extra: str) -> tuple[int, dict[str, Any]]:
        r = dbstate("audit", *args, "--output", "json", *extra, host=engine_host, state=state, secrets=secrets)
        assert r.code in (0, 3), r.stdout + r.stderr
        return r.code, json.loads(r.stdout)

    def all_answer() -> dict[str, Any] | None:
        code, doc = audit("--strict")
        return doc if code == 0 else None

    doc = wait_for(all_answer, timeout=90, interval=1)  # --strict: exit 0 once every server answers
    rows = {d["container"]: d for d in doc["databases"]}
    assert set(rows) == {
        "postgres-postgres-1",
        "supabase-db",
        "backstage-db",
        "infisical-db",
        "mariadb-mariadb-1",
        "redis-redis-1",
    }
    assert all(d["version_source"] == "server" and d["health"] == "up" for d in rows.values())
    # the versions are the servers' own: ask them directly
    with psycopg.connect(
        host=ip(docker_client, "postgres-postgres-1", "edge"),
        user="platform",
        password=demo["POSTGRES_PASSWORD"],
        dbname="platform",
    ) as conn:
        assert rows["postgres-postgres-1"]["version"] == conn.execute("SHOW server_version").fetchone()[0].split()[0]
    with (
        pymysql.connect(
            host=ip(docker_client, "mariadb-mariadb-1", "edge"), user="platform", password=demo["MARIADB_PASSWORD"]
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT VERSION()")
        assert str(cur.fetchone()[0]).startswith(rows["mariadb-mariadb-1"]["version"])
    kv_client = redis.Redis(host=ip(docker_client, "redis-redis-1", "edge"), password=demo["REDIS_PASSWORD"])
    assert rows["redis-redis-1"]["version"] == kv_client.info("server")["redis_version"]
    kv_client.close()
    assert rows["postgres-postgres-1"]["consumers"]["declared"] == ["gitlab", "wikijs"]
    assert len(doc["connections"]) == 8 and all(c["ok"] for c in doc["connections"])
    assert doc["summary"]["wrong"] is False

    # databases started by hand: one whose env credentials work, one whose root password was changed since
    labels = {"dbstate-test": "1"}
    docker_client.containers.run(
        "dbstate-local/postgres:15", name="legacy-pg", detach=True, network="edge", labels=labels,
        environment={"POSTGRES_PASSWORD": PW},
    )  # fmt: skip
    docker_client.containers.run(
        "dbstate-local/mariadb:10.11", name="stray-maria", detach=True, network="edge", labels=labels,
        environment={"MARIADB_ROOT_PASSWORD": PW},
    )  # fmt: skip
    maria = ip(docker_client, "stray-maria", "edge")
    conn = wait_for(lambda: _try(lambda: pymysql.connect(host=maria, user="root", password=PW)), timeout=60)
    with conn, conn.cursor() as cur:
        cur.execute("ALTER USER 'root'@'%%' IDENTIFIED BY %s", (WRONG,))

    def hand_started() -> dict[str, Any] | None:
        code, doc = audit("--strict")
        rows = {d["container"]: d for d in doc["databases"]}
        return doc if code == 3 and (rows.get("legacy-pg") or {}).get("version") else None

    doc = wait_for(hand_started, timeout=60, interval=1)
    rows = {d["container"]: d for d in doc["databases"]}
    legacy, stray = rows["legacy-pg"], rows["stray-maria"]
    assert legacy["declared_as"] is None and legacy["managed"] is False
    assert legacy["version"].startswith("15.") and legacy["version_source"] == "server"
    assert stray["version"].startswith("10.11.") and stray["version_source"] == "handshake"
    assert stray["health"].startswith("down: OperationalError")  # its env's credentials no longer work
    assert legacy["orphan_criteria"] == ["no-reference", "not-declared", "not-mapped"]
    assert legacy["naming"] is not None
    unmanaged = {f["name"] for f in doc["findings"] if f["type"] == "unmanaged-database"}
    assert unmanaged == {"legacy-pg", "stray-maria"}
    r = dbstate("audit", *args, host=engine_host, state=state, secrets=secrets)
    assert r.code == 0  # without --strict, a report is a success
    assert "legacy-pg" in r.stdout and "unmanaged" in r.stdout and "orphan suspect" in r.stdout


def test_run_probes_on_its_interval_into_metrics_and_status(engine_host, docker_client, tmp_path):
    root = write_tree(
        tmp_path / "d",
        {
            "net.yaml": network("net-a"),
            "kv.yaml": kv("kv-good") + "---\n" + kv("kv-bad", auth="PROBE_WRONG"),
        },
    )
    env_file = tmp_path / "probe.env"
    env_file.write_text(f"PROBE_PASSWORD={PW}\nPROBE_WRONG={WRONG}\n")
    state = tmp_path / "state.db"
    c = Controller(
        root, engine_host, state, tmp_path / "run.log", "--env-file", str(env_file), "--probe-interval", "1",
        "--unhealthy-after", "2",
    )  # fmt: skip
    try:
        wait_for(c.ready, timeout=30)

        def metrics() -> str | None:
            text = c.get("/metrics")[1]
            wanted = (
                'dbstate_instance_probe_success{host="default",name="kv-good"} 1',
                'dbstate_instance_probe_success{host="default",name="kv-bad"} 0',
                'dbstate_instance_up{host="default",name="kv-bad"} 0',
                'dbstate_findings{host="default",type="unhealthy"} 1',
            )
            return text if all(w in text for w in wanted) else None

        text = wait_for(metrics, timeout=30, interval=0.5)
        assert 'dbstate_instance_version_info{host="default",name="kv-good",version="7.0.15"} 1' in text
        assert 'dbstate_instance_up{host="default",name="kv-good"} 1' in text
        status = dbstate("status", "--state", str(state), host=engine_host, secrets=SECRETS)
        assert "unhealthy: the last" in status.stdout and "DatabaseInstance/kv-bad" in status.stdout
        assert "up        kv-good  7.0.15" in status.stdout
        assert "down      kv-bad" in status.stdout and "failed in a row (never up)" in status.stdout
        doc = json.loads(dbstate("status", "--state", str(state), "--output", "json", host=engine_host).stdout)
        health = {h["instance"]: h for h in doc["health"]}
        assert health["kv-good"]["reachable"] == 1 and health["kv-bad"]["failures"] >= 2
    finally:
        code, _seconds = c.stop()
        assert code == 0
    for secret in SECRETS:
        assert secret not in (tmp_path / "run.log").read_text()
        assert secret.encode() not in state.read_bytes()


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


def test_probing_never_prints_a_hostile_password(engine_host, docker_client, tmp_path):
    """A password with quotes, backslashes and a dollar: the servers accept it, no output shows it."""
    hostile = "q'uo\"te\\back$lash-" + SECRET
    root = write_tree(tmp_path / "d", {"net.yaml": network("net-a"), "kv.yaml": kv("kv-h")})
    env = {"PROBE_PASSWORD": hostile}
    state = tmp_path / "state.db"
    r = dbstate("apply", "--dir", str(root), "--yes", host=engine_host, env=env, state=state, secrets=(SECRET,))
    assert r.code == 0, r.stdout + r.stderr

    def up() -> bool:
        out = dbstate("plan", "--dir", str(root), "--probe", "--output", "json", host=engine_host, env=env, state=state)
        return any(p["reachable"] for p in json.loads(out.stdout)["probes"])

    wait_for(up, timeout=30, interval=0.5)
    for cmd in (("plan", "--probe"), ("audit",), ("audit", "--output", "json")):
        out = dbstate(*cmd, "--dir", str(root), host=engine_host, env=env, state=state, secrets=(SECRET,))
        assert hostile not in out.stdout + out.stderr
