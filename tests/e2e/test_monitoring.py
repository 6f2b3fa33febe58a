"""Exporters as managed sidecars (spec.monitoring, on by default): one apply of a PostgreSQL, a MariaDB and a Redis
runs each one's standard exporter (stand-ins of Debian's prometheus-*-exporter packages) on the instance's network
with a least-privileged login dbstate made through the database's own client; a real scrape of each says the server
is up and gives its sizes; a password change in the env file reaches the exporter; no password is on any exporter's
command line, in its logs, in the discovery targets or in dbstate's output; `monitoring: false` removes the exporter
and nothing else; the dashboards' series are all in what the scrapes return."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import docker
import pytest

from controller import http
from controller.core.monitoring import JOB
from controller.views.site import Site
from tests.e2e.helpers import REPO, dbstate, network, volume, wait_for
from tests.e2e.test_run import Controller, free_port
from tests.e2e.test_web import ARTIFACTS, chromium
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PW = "mon-" + SECRET
PW2 = "mon2-" + SECRET
IMAGES = {
    "DBSTATE_POSTGRES_EXPORTER_IMAGE": "dbstate-local/postgres-exporter:0.11",
    "DBSTATE_MYSQLD_EXPORTER_IMAGE": "dbstate-local/mysqld-exporter:0.14",
    "DBSTATE_REDIS_EXPORTER_IMAGE": "dbstate-local/redis-exporter:1.45",
}

PG = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: mon-pg, labels: {dbstate-test: "1"}}
spec:
  engine: postgres
  version: "15"
  image: dbstate-local/postgres:15
  containerName: mon-pg-db
  networks: [{name: mon-net, aliases: [mon-pg]}]
  volumes: [{source: mon-pg-data, target: /var/lib/postgresql/data}]
  env: {POSTGRES_USER: app, POSTGRES_PASSWORD: "${MON_PASSWORD}", POSTGRES_DB: app}
  auth: {method: scram-sha-256, user: app, password: "${MON_PASSWORD}", database: app}
"""
MY = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: mon-my, labels: {dbstate-test: "1"}}
spec:
  engine: mariadb
  version: "10.11"
  image: dbstate-local/mariadb:10.11
  containerName: mon-my-db
  networks: [{name: mon-net, aliases: [mon-my]}]
  volumes: [{source: mon-my-data, target: /var/lib/mysql}]
  env: {MARIADB_ROOT_PASSWORD: "${MON_PASSWORD}", MARIADB_DATABASE: app}
  auth: {method: password, user: root, password: "${MON_PASSWORD}", database: app}
"""
KV = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: mon-kv, labels: {dbstate-test: "1"}}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: mon-kv-db
  networks: [{name: mon-net, aliases: [mon-kv]}]
  env: {REDIS_PASSWORD: "${MON_PASSWORD}"}
  command: ["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]
  auth: {method: password, password: "${MON_PASSWORD}"}
"""


OFF = {"DBSTATE_MONITORING": "off"}


def run(*args: str, host: str, state: Path, env_file: Path, monitoring: str = "on") -> Any:
    """`dbstate ARGS --env-file ENV_FILE`; monitoring "on" is the real default (the suite's conftest turns it off
    for the other tests)."""
    env = {"DBSTATE_MONITORING": monitoring}
    return dbstate(*args, "--env-file", str(env_file), host=host, state=state, env=env, secrets=(PW, PW2))


def scrape(client: docker.DockerClient, container: str, port: int) -> str:
    c = client.containers.get(container)
    address = c.attrs["NetworkSettings"]["Networks"]["mon-net"]["IPAddress"]
    with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The exposition format's samples: (name, labels, value)."""
    out = []
    for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def value(text: str, metric: str, **labels: str) -> float | None:
    """The first sample of `metric` whose labels include `labels`."""
    return next((v for n, ls, v in samples(text) if n == metric and labels.items() <= ls.items()), None)


def up(client: docker.DockerClient, container: str, port: int, metric: str) -> str | None:
    try:
        text = scrape(client, container, port)
    except OSError:
        return None
    return text if value(text, metric) == 1 else None


EXPORTERS = {
    "mon-pg-db-exporter": (9187, "pg_up"),
    "mon-my-db-exporter": (9104, "mysql_up"),
    "mon-kv-db-exporter": (9121, "redis_up"),
}


SERIES = re.compile(r"\b((?:pg|mysql|redis)_[a-z_]+)\b")
ONLY_WITH_REPLICAS = {"pg_replication_lag_seconds", "pg_replication_lag", "mysql_slave_status_seconds_behind_master"}


def dashboards_and_rules_name_only_what_the_exporters_return(scrapes: dict[str, str]) -> None:
    """Every exporter series deploy/grafana's engine dashboards and deploy/prometheus's rules name is one these real
    exporters return (dbstate's own series are checked against its /metrics in tests/unit/test_deploy.py)."""
    returned = {name for text in scrapes.values() for name, _, _ in samples(text)}
    deploy = REPO / "deploy"
    exprs = [
        t["expr"]
        for d in ("postgres", "mariadb", "redis")
        for p in json.loads((deploy / "grafana" / f"{d}.json").read_text())["panels"]
        for t in p["targets"]
    ]
    named = {n for e in exprs for n in SERIES.findall(e)}
    rules = (deploy / "prometheus" / "alerts.yaml").read_text()
    named |= {n for n in SERIES.findall(rules)}
    assert len(named) > 25
    assert named - returned - ONLY_WITH_REPLICAS == set()


def web_view_and_targets(state: Path, tmp_path: Path) -> None:
    """The pages `dbstate run --listen` serves, on a real HTTP server, one page in a real browser."""
    port = free_port()
    server = http.serve(
        ("127.0.0.1", port), None, lambda: True, Site(state, tmp_path / "backups", f"127.0.0.1:{port}").handle
    )
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/targets", timeout=10) as r:
            body = r.read().decode()
        assert PW not in body
        found = {t["targets"][0]: t["labels"] for t in json.loads(body)}
        assert found == {
            "mon-kv-db-exporter:9121": {"instance": "mon-kv", "engine": "redis", "host": "default", "job": JOB},
            "mon-my-db-exporter:9104": {"instance": "mon-my", "engine": "mariadb", "host": "default", "job": JOB},
            "mon-pg-db-exporter:9187": {"instance": "mon-pg", "engine": "postgres", "host": "default", "job": JOB},
            f"127.0.0.1:{port}": {"instance": "dbstate", "engine": "dbstate", "host": "controller", "job": "dbstate"},
        }
        dom = chromium("--dump-dom", f"http://127.0.0.1:{port}/instances/mon-pg").stdout
        row = re.search(r'<tr id="exporter" data-status="([^"]*)">(.*?)</tr>', dom, re.S)
        assert row is not None, dom[-2000:]
        assert row.group(1) == "in-sync" and "mon-pg-db-exporter" in row.group(2) and "dbstate_monitor" in row.group(2)
        assert PW not in dom
    finally:
        server.shutdown()
        server.server_close()


def test_exporters_run_beside_each_engine_scrape_up_follow_a_password_change_and_go_when_turned_off(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    files = {"net.yaml": network("mon-net"), "vol.yaml": volume("mon-pg-data") + "---\n" + volume("mon-my-data")}
    root = write_tree(tmp_path / "ds", {**files, "pg.yaml": PG, "my.yaml": MY, "kv.yaml": KV})
    env_file = tmp_path / "site.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in IMAGES.items()) + f"MON_PASSWORD={PW}\n")
    state = tmp_path / "state.db"

    plan = run("plan", "--dir", str(root), "--output", "json", host=engine_host, state=state, env_file=env_file)
    assert plan.code == 2, plan.stdout + plan.stderr
    exporters = [c for c in plan.json()["changes"] if c["kind"] == "Exporter"]
    assert sorted((c["action"], c["target"]) for c in exporters) == [("create", n) for n in sorted(EXPORTERS)]

    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state, env_file=env_file)
    assert r.code == 0, r.stdout + r.stderr
    made = docker_client.containers.get("mon-my-db").exec_run(
        ["mariadb", "-uroot", "app", "-e", "CREATE TABLE marker (id INT PRIMARY KEY); INSERT INTO marker VALUES (1)"],
        environment={"MYSQL_PWD": PW},
    )
    assert made.exit_code == 0, made.output.decode()
    scrapes = {
        n: wait_for(lambda n=n, p=p, m=m: up(docker_client, n, p, m), timeout=60) for n, (p, m) in EXPORTERS.items()
    }
    pg, my, kv = (scrapes[n] for n in EXPORTERS)
    ARTIFACTS.mkdir(exist_ok=True)
    for n, text in scrapes.items():  # what the dashboards and rules are checked against
        (ARTIFACTS / f"scrape-{n.removeprefix('mon-').removesuffix('-db-exporter')}.txt").write_text(text)
    assert (value(pg, "pg_database_size_bytes", datname="app") or 0) > 0
    assert (value(my, "mysql_global_status_uptime") or 0) > 0
    exp = docker_client.containers.get("mon-my-db-exporter")
    assert (value(my, "mysql_info_schema_table_size", schema="app", component="data_length") or 0) > 0, (
        exp.attrs["Config"]["Cmd"],
        exp.logs().decode()[-1500:],
    )
    assert value(kv, "redis_memory_used_bytes") is not None
    dashboards_and_rules_name_only_what_the_exporters_return(scrapes)
    again = run("plan", "--dir", str(root), "--output", "json", host=engine_host, state=state, env_file=env_file)
    assert again.code == 0, again.stdout  # converged: nothing more to do

    # the logins are least-privileged and the exporters' own
    pg_roles = docker_client.containers.get("mon-pg-db").exec_run(
        [
            "psql",
            "-U",
            "app",
            "-d",
            "app",
            "-Atc",
            "SELECT rolsuper, rolcreaterole, rolconnlimit, pg_has_role('dbstate_monitor', 'pg_monitor', 'member') "
            "FROM pg_roles WHERE rolname = 'dbstate_monitor'",
        ]
    )
    assert pg_roles.output.decode().strip() == "f|f|3|t"
    stored = docker_client.containers.get("mon-pg-db").exec_run(
        [
            "psql",
            "-U",
            "app",
            "-d",
            "app",
            "-Atc",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'dbstate_monitor'",
        ]
    )
    assert stored.output.decode().startswith("SCRAM-SHA-256$4096:")  # set as a verifier: the server never saw it
    grants = docker_client.containers.get("mon-my-db").exec_run(
        ["mariadb", "-uroot", "-N", "-e", "SHOW GRANTS FOR 'dbstate_monitor'@'%'"], environment={"MYSQL_PWD": PW}
    )
    shown = grants.output.decode()
    assert "PROCESS" in shown and ("BINLOG MONITOR" in shown or "REPLICATION CLIENT" in shown), shown
    assert "ALL PRIVILEGES" not in shown and "SUPER" not in shown

    # no password (the server's, or the exporter's own login's) on a command line, in the exporters' logs or their
    # metrics, in the targets or in dbstate's output
    for name in EXPORTERS:
        c = docker_client.containers.get(name)
        env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
        own = env.get("DATA_SOURCE_PASS") or env.get("MYSQLD_EXPORTER_PASSWORD") or env.get("REDIS_PASSWORD")
        assert own and len(own) >= 32 and own != PW  # its own login, derived from the declared password
        for secret in (PW, own):
            assert secret not in json.dumps(c.attrs["Args"]) + json.dumps(c.attrs["Config"]["Cmd"]) + c.attrs["Path"]
            assert secret not in c.logs().decode(errors="replace")
            assert secret not in scrapes[name]
        assert list(c.attrs["NetworkSettings"]["Networks"]) == ["mon-net"]  # the instance's network only
    status = dbstate("status", "--output", "json", host=engine_host, state=state, secrets=(PW, PW2))
    rows = {r["key"]: r["status"] for r in json.loads(status.stdout)["resources"]}
    assert {k: v for k, v in rows.items() if k.startswith("Exporter/")} == {
        "Exporter/mon-kv": "in-sync",
        "Exporter/mon-my": "in-sync",
        "Exporter/mon-pg": "in-sync",
    }
    web_view_and_targets(state, tmp_path)

    # a password rotated on the servers and in the env file reaches the exporters (their logins follow it); the
    # servers' own env differs from their containers' now: config drift, left to a human (policy.upgrade: manual)
    rotate = (
        ("mon-pg-db", ["psql", "-U", "app", "-d", "app", "-c", f"ALTER ROLE app PASSWORD '{PW2}'"]),
        (
            "mon-my-db",
            [
                "mariadb",
                "-uroot",
                "-e",
                f"ALTER USER IF EXISTS 'root'@'%' IDENTIFIED BY '{PW2}'; "
                f"ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY '{PW2}'",
            ],
        ),
        ("mon-kv-db", ["redis-cli", "--no-auth-warning", "CONFIG", "SET", "requirepass", PW2]),
    )
    for name, alter in rotate:
        out = docker_client.containers.get(name).exec_run(alter, environment={"MYSQL_PWD": PW, "REDISCLI_AUTH": PW})
        assert out.exit_code == 0, out.output.decode()
    ids = {n: docker_client.containers.get(n).id for n in EXPORTERS}
    env_file.write_text(env_file.read_text().replace(PW, PW2))
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state, env_file=env_file)
    assert r.code in (0, 1) and "3 done, 0 failed" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("config-drift") >= 3, r.stdout
    for n, (p, m) in EXPORTERS.items():
        assert docker_client.containers.get(n).id != ids[n], f"{n} was not recreated"
        assert wait_for(lambda n=n, p=p, m=m: up(docker_client, n, p, m), timeout=60)

    # opting out removes the exporter, and nothing else
    def containers() -> set[str]:  # but the lease's markers, which each apply moves on
        return {c.name for c in docker_client.containers.list(all=True) if not c.name.startswith("dbstate-lease")}

    before = containers()
    (root / "pg.yaml").write_text(PG.replace("spec:\n", "spec:\n  monitoring: false\n", 1))
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state, env_file=env_file)
    assert "remove Exporter/mon-pg" in r.stdout and "1 done, 0 failed" in r.stdout, r.stdout + r.stderr
    after = containers()
    assert before - after == {"mon-pg-db-exporter"} and after <= before
    assert docker_client.containers.get("mon-pg-db").status == "running"


def test_run_restore_verifies_the_newest_backup_on_its_own_schedule_and_exports_when(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    """policy.backup.verify: a backup taken by hand is restored into a throw-away server by `dbstate run` (no schedule
    of backups needed), the manifest says so, and /metrics carries the signal the 26 h alert reads."""
    policy = "  policy: {backup: {verify: 1m}}\n"
    root = write_tree(tmp_path / "ds", {"net.yaml": network("mon-net"), "kv.yaml": KV + policy})
    env_file = tmp_path / "site.env"
    env_file.write_text(f"MON_PASSWORD={PW}\n")
    state = tmp_path / "state.db"
    for args in (("apply", "--yes"), ("backup", "mon-kv")):
        r = run(*args, "--dir", str(root), host=engine_host, state=state, env_file=env_file, monitoring="off")
        assert r.code == 0, r.stdout + r.stderr
    c = Controller(root, engine_host, state, tmp_path / "run.log", "--env-file", str(env_file), env=OFF)
    try:
        wait_for(c.ready, timeout=60)

        def verified() -> float | None:
            text = c.get("/metrics")[1]
            return value(text, "dbstate_backup_last_verified_timestamp_seconds", instance="mon-kv")

        when = wait_for(verified, timeout=90, interval=1)
        text = c.get("/metrics")[1]
        assert (value(text, "dbstate_backup_last_success_timestamp_seconds", instance="mon-kv") or 0) > 0
        assert value(text, "dbstate_backup_verify_failures_total", instance="mon-kv") == 0
        assert PW not in text
    finally:
        code, _ = c.stop()
    assert code == 0, c.log_path.read_text()[-2000:]
    assert "backup verified" in c.log_path.read_text()
    listed = dbstate("backups", "mon-kv", "--output", "json", host=engine_host, state=state, secrets=(PW,))
    assert listed.code == 0, listed.stderr
    (m,) = json.loads(listed.stdout)
    assert m["verified"] == when  # the manifest of the backup taken by hand, verified by the controller
