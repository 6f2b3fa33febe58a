"""The probes against real PostgreSQL, MariaDB and Redis servers in the private engine: the version the server itself
reports, and exactly the expected problem for a wrong password, a stopped server, a trust rule, a Redis without
requirepass, a declared version that differs, an account without a password. No password in any result."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import docker
import pymysql
import pytest

from controller.adapters import desired
from controller.adapters.probes import probe
from controller.core import spec
from tests.e2e.helpers import network, redis_instance, run_instance, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine
PW = "probe-" + SECRET


def pg(version: str = "15") -> str:
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: pg}}
spec:
  engine: postgres
  version: "{version}"
  image: dbstate-local/postgres:{version if version == "15" else "15"}
  containerName: pg-db
  networks: [{{name: net-a, aliases: [pg]}}]
  env: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${{PROBE_PASSWORD}}"}}
  auth: {{method: scram-sha-256, user: app, password: "${{PROBE_PASSWORD}}", database: app}}
"""


MARIADB = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: my}
spec:
  engine: mariadb
  version: "10.11"
  image: dbstate-local/mariadb:10.11
  containerName: my-db
  networks: [{name: net-a, aliases: [my]}]
  env: {MARIADB_ROOT_PASSWORD: "${PROBE_PASSWORD}", MARIADB_USER: app, MARIADB_PASSWORD: "${PROBE_PASSWORD}",
        MARIADB_DATABASE: app}
  auth: {method: password, user: app, password: "${PROBE_PASSWORD}", database: app}
"""


def load(tmp_path, files: dict[str, str], password: str = PW) -> dict[str, spec.DatabaseInstance]:
    root = write_tree(tmp_path / "d", {"net.yaml": network("net-a"), **files})
    loaded = desired.load(root, environ={"PROBE_PASSWORD": password, "TEST_REDIS_PASSWORD": password})
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    return {i.metadata.name: i for i in loaded.state.instances}


def ip(client: docker.DockerClient, name: str) -> str:
    return str(client.containers.get(name).attrs["NetworkSettings"]["Networks"]["net-a"]["IPAddress"])


@pytest.fixture
def servers(tmp_path, docker_client) -> dict[str, Any]:
    instances = load(tmp_path, {"pg.yaml": pg(), "my.yaml": MARIADB, "kv.yaml": redis_instance("kv", "kv-db")})
    docker_client.networks.create("net-a", labels={"dbstate-test": "1"})
    for inst in instances.values():
        run_instance(docker_client, inst)
    for inst in instances.values():
        wait_for(
            lambda inst=inst: probe(inst, ip(docker_client, inst.container_name), 2.0).reachable,
            timeout=90,
            interval=0.5,
        )
    return instances


def no_secret(result: Any) -> None:
    assert PW not in repr(result) and PW not in str(result.error)


def test_healthy_servers_report_their_own_version(servers, docker_client):
    versions = {}
    for name, inst in servers.items():
        r = probe(inst, ip(docker_client, inst.container_name), 2.0)
        assert r.reachable and r.error is None, r
        assert r.auth_weak == (), r.auth_weak
        assert not r.version_mismatch(inst.spec.version)
        assert r.rtt_ms is not None and r.rtt_ms < 2000
        versions[name] = r.version
        no_secret(r)
    assert versions["pg"].startswith("15.") and versions["my"].startswith("10.11.") and versions["kv"].startswith("7.")


def test_wrong_password_is_unreachable_with_the_reason(servers, docker_client, tmp_path):
    wrong = load(
        tmp_path / "wrong",
        {"pg.yaml": pg(), "my.yaml": MARIADB, "kv.yaml": redis_instance("kv", "kv-db")},
        password="not-the-" + SECRET,
    )
    for inst in wrong.values():
        r = probe(inst, ip(docker_client, inst.container_name), 2.0)
        assert not r.reachable and r.error, r
        assert "not-the-" + SECRET not in r.error and PW not in r.error


def test_stopped_server_costs_its_timeout_not_more(servers, docker_client):
    address = ip(docker_client, "pg-db")
    docker_client.containers.get("pg-db").stop(timeout=2)
    t0 = time.monotonic()
    r = probe(servers["pg"], address, 1.0)
    assert not r.reachable
    assert time.monotonic() - t0 < 3.5


def test_trust_rule_is_auth_weak(servers, docker_client):
    c = docker_client.containers.get("pg-db")
    c.exec_run(["sh", "-c", "sed -i '1i host all all all trust' /var/lib/postgresql/data/pg_hba.conf"])
    c.kill(signal="SIGHUP")  # postgres is PID 1: reload its configuration
    r = wait_for(
        lambda: (lambda r: r if r.auth_weak else None)(probe(servers["pg"], ip(docker_client, "pg-db"), 2.0)),
        timeout=10,
    )
    assert r.auth_weak == ("pg_hba.conf line 1: host connections use trust, weaker than the declared scram-sha-256",)


def test_redis_without_requirepass_while_one_is_declared(servers, docker_client):
    docker_client.containers.get("kv-db").remove(force=True)
    docker_client.containers.run(
        "dbstate-local/redis:7.0", name="kv-db", detach=True, network="net-a", labels={"dbstate-test": "1"}
    )
    r = wait_for(
        lambda: (lambda r: r if r.reachable else None)(probe(servers["kv"], ip(docker_client, "kv-db"), 2.0)),
        timeout=20,
    )
    assert len(r.auth_weak) == 1 and "no requirepass" in r.auth_weak[0], r.auth_weak


def test_declared_version_differs_from_the_server(servers, docker_client, tmp_path):
    declared_16 = servers["pg"].model_copy(update={"spec": servers["pg"].spec.model_copy(update={"version": "16"})})
    r = probe(declared_16, ip(docker_client, "pg-db"), 2.0)
    assert r.reachable and r.version_mismatch("16") and not r.version_mismatch("15")


def test_mariadb_account_without_password_is_auth_weak(servers, docker_client):
    conn = pymysql.connect(host=ip(docker_client, "my-db"), user="root", password=PW, connect_timeout=3)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'nopass'@'%'")
    r = probe(servers["my"], ip(docker_client, "my-db"), 2.0)
    assert r.auth_weak == () and r.facts["accounts"].startswith("accounts not checked")  # app cannot see them
    as_root = servers["my"].spec.auth.model_copy(update={"user": "root", "database": None})
    root_probe = servers["my"].model_copy(update={"spec": servers["my"].spec.model_copy(update={"auth": as_root})})
    r = probe(root_probe, ip(docker_client, "my-db"), 2.0)
    assert r.auth_weak == ("account 'nopass'@'%' has no password",)
    assert r.facts["accounts"] == "accounts checked"


def test_probes_through_the_engine_report_what_direct_probes_report(servers, docker_client, engine_host, tmp_path):
    """The engine's own client inside each container (docker exec) against a connection to its address: the same
    version, the same verdict and the same weaknesses; and `auto` falls back to exec when there is no route."""
    from controller.adapters.docker import DockerRuntime
    from controller.adapters.probes import Probes
    from controller.adapters.shell import DockerShell

    # a weakness on each engine, so that the facts compared are not all empty
    c = docker_client.containers.get("pg-db")
    c.exec_run(["sh", "-c", "sed -i '1i host all all all md5' /var/lib/postgresql/data/pg_hba.conf"])
    c.kill(signal="SIGHUP")
    as_root = servers["my"].spec.auth.model_copy(update={"user": "root", "database": None})
    my_root = servers["my"].model_copy(update={"spec": servers["my"].spec.model_copy(update={"auth": as_root})})
    pymysql.connect(host=ip(docker_client, "my-db"), user="root", password=PW, connect_timeout=3).cursor().execute(
        "CREATE USER 'nopass'@'%'"
    )
    instances = [servers["pg"], my_root, servers["kv"], servers["my"]]
    runtime = DockerRuntime(engine_host)
    try:
        shell = DockerShell(runtime)
        observed = runtime.observe()
        time.sleep(1)  # the reload of pg_hba.conf
        direct = Probes("direct").probe_all(instances[:3], observed, timeout=3.0, internal=frozenset())
        via_exec = Probes("exec", shell).probe_all(instances[:3], observed, timeout=3.0, internal=frozenset())
        for name in ("pg", "my", "kv"):
            d, e = direct[name], via_exec[name]
            assert d.reachable and e.reachable, (d, e)
            assert (e.version, e.auth_weak, e.facts) == (d.version, d.auth_weak, d.facts), (d, e)
            assert e.address.startswith("exec:") and e.rtt_ms is not None
            no_secret(e)
        assert direct["pg"].auth_weak == (
            "pg_hba.conf line 1: host connections use md5, weaker than the declared scram-sha-256",
        )
        assert direct["my"].auth_weak == ("account 'nopass'@'%' has no password",)
        # no route: an observed state whose addresses lead nowhere (nothing listens there); auto says what exec says
        nowhere = dataclasses.replace(
            observed,
            containers=tuple(
                dataclasses.replace(c, networks=tuple(dataclasses.replace(a, ip="127.0.0.2") for a in c.networks))
                for c in observed.containers
            ),
        )
        auto = Probes("auto", shell).probe_all([servers["kv"]], nowhere, timeout=1.0, internal=frozenset())
        assert auto["kv"].reachable and auto["kv"].address == "exec:kv-db"
        assert auto["kv"].version == direct["kv"].version
        # a wrong password through exec: not reachable, and the reason does not hold the password tried
        wrong = load(
            tmp_path / "wrong", {"pg.yaml": pg(), "kv.yaml": redis_instance("kv", "kv-db")}, password="x-" + SECRET
        )
        refused = Probes("exec", shell).probe_all(list(wrong.values()), observed, timeout=3.0, internal=frozenset())
        for r in refused.values():
            assert not r.reachable and r.error and SECRET not in r.error and "x-" + SECRET not in repr(r), r
    finally:
        runtime.close()
