"""`dbstate apply` against a real engine and real database servers: converge, repair, recreate keeping data, survive
SIGKILL at any moment, survive the engine going away, never start on a lost volume, never print a secret."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import psycopg
import pymysql
import pytest
import redis

from tests.e2e.helpers import ENV as HELPER_ENV
from tests.e2e.helpers import REPO, dbstate, demo_env, network, redis_instance, run_plain, volume, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PG_PASSWORD = "pg-" + SECRET
MARKER = "marker row written before the recreate"


def pg_instance(
    name: str = "pg",
    container: str = "pg-db",
    volume_name: str = "pg-data",
    extra_env: str = "",
    policy: str = "{upgrade: recreate}",
) -> str:
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: {name}}}
spec:
  engine: postgres
  version: "15"
  image: dbstate-local/postgres:15
  containerName: {container}
  networks: [{{name: net-a, aliases: [{name}]}}]
  volumes: [{{source: {volume_name}, target: /var/lib/postgresql/data}}]
  env:
    POSTGRES_USER: app
    POSTGRES_DB: app
    POSTGRES_PASSWORD: ${{TEST_PG_PASSWORD}}{extra_env}
  auth: {{method: scram-sha-256, user: app, password: "${{TEST_PG_PASSWORD}}", database: app}}
  policy: {policy}
"""


ENV = {"TEST_PG_PASSWORD": PG_PASSWORD}
SECRETS = (SECRET, PG_PASSWORD)


def apply(root: Path, host: str, state: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return dbstate(
        "apply",
        "--dir",
        str(root),
        "--yes",
        *extra,
        host=host,
        state=state,
        env={**ENV, **(env or {})},
        secrets=SECRETS,
    )


def plan(root: Path, host: str, state: Path, *extra: str) -> Any:
    return dbstate(
        "plan", "--dir", str(root), "--output", "json", *extra, host=host, state=state, env=ENV, secrets=SECRETS
    )


def ip_of(client: docker.DockerClient, name: str) -> str:
    nets = client.containers.get(name).attrs["NetworkSettings"]["Networks"]
    return next(iter(nets.values()))["IPAddress"]


def pg_connect(client: docker.DockerClient, container: str = "pg-db", timeout: float = 40) -> psycopg.Connection[Any]:
    def attempt() -> psycopg.Connection[Any] | None:
        try:
            return psycopg.connect(
                host=ip_of(client, container),
                user="app",
                password=PG_PASSWORD,
                dbname="app",
                connect_timeout=2,
                autocommit=True,
            )
        except (psycopg.OperationalError, KeyError, StopIteration):
            return None

    conn: psycopg.Connection[Any] = wait_for(attempt, timeout=timeout, interval=0.5)
    return conn


def managed_names(client: docker.DockerClient) -> list[str]:
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": "io.dbstate.managed=true"}))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


SMALL = {
    "net.yaml": network("net-a") + "---\n" + network("iso", isolated=True),
    "vol.yaml": volume("kv-data"),
    "kv.yaml": redis_instance("kv-a", "kv-a-db", volume="kv-data"),
    "kv2.yaml": redis_instance("kv-b", "kv-b-db"),
}


def test_cold_apply_of_the_example_converges_and_servers_answer(docker_client, engine_host, tmp_path, state):
    demo = demo_env()
    args = ("--dir", str(REPO / "examples/local"), "--env-file", str(REPO / "examples/local/demo.env"))
    secrets = tuple(v for k, v in demo.items() if "PASSWORD" in k or "SECRET" in k)
    r = dbstate("apply", *args, "--yes", host=engine_host, state=state, secrets=secrets)
    assert r.code == 0, r.stdout + r.stderr
    assert "Apply: 20 done, 0 failed, 0 skipped." in r.stdout
    assert len(managed_names(docker_client)) == 12
    # real servers answer with the declared credentials
    conn = _eventually(
        psycopg.connect,
        host=ip_of(docker_client, "postgres-postgres-1"),
        user="platform",
        password=demo["POSTGRES_PASSWORD"],
        dbname="platform",
        connect_timeout=2,
    )
    assert conn.execute("select current_database()").fetchone() == ("platform",)
    conn.close()
    _eventually(
        pymysql.connect,
        host=ip_of(docker_client, "mariadb-mariadb-1"),
        user="platform",
        password=demo["MARIADB_PASSWORD"],
        database="platform",
        connect_timeout=2,
    ).close()
    kv = redis.Redis(host=ip_of(docker_client, "redis-redis-1"), password=demo["REDIS_PASSWORD"], socket_timeout=3)
    assert wait_for(lambda: _try(kv.ping), timeout=30) is True
    kv.close()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=ip_of(docker_client, "redis-redis-1"), socket_timeout=3).ping()
    # idempotent: the next plan is in sync, the next apply changes nothing
    r = dbstate("plan", *args, host=engine_host, state=state, secrets=secrets)
    assert r.code == 0, r.stdout
    r = dbstate("apply", *args, "--yes", host=engine_host, state=state, secrets=secrets)
    assert r.code == 0 and "In sync: no changes." in r.stdout


def _eventually(connect: Any, **kwargs: Any) -> Any:
    """A connection, once the server has finished initialising (up to a minute)."""
    return wait_for(lambda: _try(lambda: connect(**kwargs)), timeout=60)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


@pytest.mark.parametrize("drift", ["stop", "disconnect", "delete-network", "remove-alias", "kill"])
def test_one_apply_repairs_each_drift(docker_client, engine_host, tmp_path, state, drift):
    root = write_tree(tmp_path / "d", SMALL)
    assert apply(root, engine_host, state).code == 0
    net = docker_client.networks.get("net-a")
    if drift == "stop":
        docker_client.containers.get("kv-a-db").stop(timeout=2)
    elif drift == "kill":
        docker_client.containers.get("kv-a-db").kill()
    elif drift == "disconnect":
        net.disconnect("kv-a-db")
    elif drift == "delete-network":
        for c in ("kv-a-db", "kv-b-db"):
            net.disconnect(c)
        net.remove()
    elif drift == "remove-alias":
        net.disconnect("kv-a-db")
        net.connect("kv-a-db")
    assert plan(root, engine_host, state).code == 2
    r = apply(root, engine_host, state)
    assert r.code == 0, r.stdout + r.stderr
    assert plan(root, engine_host, state).code == 0
    c = docker_client.containers.get("kv-a-db")
    assert c.status == "running"
    assert "kv-a" in c.attrs["NetworkSettings"]["Networks"]["net-a"]["Aliases"]


def test_recreate_keeps_the_data(docker_client, engine_host, tmp_path, state):
    root = write_tree(
        tmp_path / "d", {"net.yaml": network("net-a"), "vol.yaml": volume("pg-data"), "pg.yaml": pg_instance()}
    )
    assert apply(root, engine_host, state).code == 0
    with pg_connect(docker_client) as conn:
        conn.execute("create table marker (note text)")
        conn.execute("insert into marker values (%s)", (MARKER,))
    old_id = docker_client.containers.get("pg-db").id
    (root / "pg.yaml").write_text(pg_instance(extra_env="\n    TZ: UTC"))
    p = plan(root, engine_host, state).json()
    assert [(c["action"], c["target"]) for c in p["changes"]] == [("recreate", "pg-db")]
    r = apply(root, engine_host, state)
    assert r.code == 0, r.stdout + r.stderr
    new = docker_client.containers.get("pg-db")
    assert new.id != old_id and "TZ=UTC" in new.attrs["Config"]["Env"]
    with pg_connect(docker_client) as conn:
        assert conn.execute("select note from marker").fetchall() == [(MARKER,)]
    assert managed_names(docker_client) == ["pg-db"]
    assert plan(root, engine_host, state).code == 0


def _killed_apply(root: Path, host: str, state: Path, delay: float) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
    env.update(HELPER_ENV, **ENV, DOCKER_HOST=host, DBSTATE_STATE=str(state), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "apply", "--dir", str(root), "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_crash_safety_under_sigkill(docker_client, engine_host, tmp_path, state):
    """SIGKILL at random moments of cold applies and of recreates: the next apply always converges, with no
    duplicate container, no leftover, and the marker row intact. (bench/crash.py runs more trials.)"""
    rng = random.Random(int(os.environ.get("DBSTATE_CRASH_SEED", "20261124")))
    files = {
        "net.yaml": network("net-a"),
        "vol.yaml": volume("pg-data") + "---\n" + volume("kv-data"),
        "pg.yaml": pg_instance(),
        "kv.yaml": redis_instance("kv-a", "kv-a-db", volume="kv-data"),
    }
    expected = ["kv-a-db", "pg-db"]
    trials = int(os.environ.get("DBSTATE_CRASH_TRIALS", "5"))
    for trial in range(trials):  # cold applies, killed
        if trial:
            for c in docker_client.containers.list(all=True, filters={"label": "io.dbstate.managed=true"}):
                c.remove(force=True)
        root = write_tree(tmp_path / f"cold{trial}", files)
        _killed_apply(root, engine_host, state, rng.uniform(0.2, 2.0))
        r = apply(root, engine_host, state)
        assert r.code == 0, f"cold trial {trial}: {r.stdout}{r.stderr}"
        assert managed_names(docker_client) == expected, r.stdout + r.stderr
        assert plan(root, engine_host, state).code == 0
        # the server up (its first start initialised the volume) before the next trial removes it: a container
        # removed while initdb runs leaves a half-made data directory that no server starts on (the image's
        # behaviour, not dbstate's)
        with pg_connect(docker_client):
            pass
    with pg_connect(docker_client) as conn:
        conn.execute("create table if not exists marker (note text)")
        conn.execute("insert into marker values (%s)", (MARKER,))
    for trial in range(trials):  # recreates, killed
        (root / "pg.yaml").write_text(pg_instance(extra_env=f"\n    TZ: UTC{trial}"))
        _killed_apply(root, engine_host, state, rng.uniform(0.2, 2.5))
        r = apply(root, engine_host, state)
        assert r.code == 0, f"recreate trial {trial}: {r.stdout}{r.stderr}"
        assert managed_names(docker_client) == expected, f"recreate trial {trial}"
        assert plan(root, engine_host, state).code == 0
        with pg_connect(docker_client) as conn:
            assert conn.execute("select note from marker").fetchall() == [(MARKER,)], f"recreate trial {trial}"


def test_engine_going_away_mid_apply(docker_client, engine, tmp_path, state):
    files = dict(SMALL)
    for i in range(6):
        files[f"more{i}.yaml"] = redis_instance(f"kv-m{i}", f"kv-m{i}-db")
    root = write_tree(tmp_path / "d", files)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
    env.update(HELPER_ENV, **ENV, DOCKER_HOST=engine.host, DBSTATE_STATE=str(state), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller.cli",
            "apply",
            "--dir",
            str(root),
            "--yes",
            "--parallel",
            "1",
            "--retry-budget",
            "3",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the apply is creating containers
        if line.startswith("  ok") and "DatabaseInstance/" in line:
            break
    t0 = time.monotonic()
    engine.stop()
    rest, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, rest + err
    assert "Errors in the desired state" not in rest
    assert "FAILED" in rest and "cannot reach the Docker engine" in rest
    assert "skipped" in rest or rest.count("FAILED") >= 1
    assert elapsed < 60, f"gave up after {elapsed:.0f}s; the budget is 3s per call"
    assert SECRET not in rest + err
    engine.start()
    client = docker.DockerClient(base_url=engine.host, version="auto", timeout=60)
    try:
        r = apply(root, engine.host, state)
        assert r.code == 0, r.stdout + r.stderr
        assert plan(root, engine.host, state).code == 0
        assert len(managed_names(client)) == 8
    finally:
        client.close()


def test_lost_volume_is_a_finding_until_acknowledged(docker_client, engine_host, tmp_path, state):
    root = write_tree(tmp_path / "d", SMALL)
    r = apply(root, engine_host, state)
    assert r.code == 0, r.stdout
    docker_client.containers.get("kv-a-db").remove(force=True)
    docker_client.volumes.get("kv-data").remove()
    p = plan(root, engine_host, state).json()
    assert p["changes"] == []
    assert {(f["type"], f["kind"], f["name"]) for f in p["findings"]} == {
        ("volume-lost", "Volume", "kv-data"),
        ("volume-lost", "DatabaseInstance", "kv-a"),
    }
    r = apply(root, engine_host, state)  # nothing to do, but not converged: exit 1 like every other hold-back
    assert r.code == 1 and "In sync" in r.stdout and "Not converged: DatabaseInstance/kv-a" in r.stdout, r.stdout
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("kv-a-db")  # never started on a new empty volume
    r = dbstate("ack", "volume-lost", "kv-data", host=engine_host, state=state)
    assert r.code == 0
    r = apply(root, engine_host, state)
    assert r.code == 0, r.stdout
    assert docker_client.containers.get("kv-a-db").status == "running"
    assert plan(root, engine_host, state).json()["findings"] == []
    # the acknowledgement is consumed: losing it again is a finding again
    docker_client.containers.get("kv-a-db").remove(force=True)
    docker_client.volumes.get("kv-data").remove()
    assert {f["type"] for f in plan(root, engine_host, state).json()["findings"]} == {"volume-lost"}


def test_an_emptied_state_database_does_not_forget_a_lost_volume(docker_client, engine_host, tmp_path, state):
    """What protects data is kept on the engine too (a `dbstate-seen-<volume>` marker): with the state database
    emptied, and then another one altogether, the lost volume is still lost, and the acknowledged replacement is
    remembered by its new identity."""
    root = write_tree(tmp_path / "d", SMALL)
    assert apply(root, engine_host, state).code == 0
    docker_client.containers.get("kv-a-db").remove(force=True)
    docker_client.volumes.get("kv-data").remove()
    state.unlink()
    for db in (state, tmp_path / "elsewhere.db"):
        r = apply(root, engine_host, db)
        assert r.code == 1 and "volume-lost Volume/kv-data" in r.stdout, r.stdout
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get("kv-a-db")
    assert [v.name for v in docker_client.volumes.list() if v.name.startswith("dbstate-seen-")] == [
        "dbstate-seen-kv-data"
    ]
    assert "dbstate-seen-kv-data" not in plan(root, engine_host, state).stdout  # never shown as a volume
    assert dbstate("ack", "volume-lost", "kv-data", host=engine_host, state=state).code == 0
    assert apply(root, engine_host, state).code == 0
    assert docker_client.containers.get("kv-a-db").status == "running"
    assert plan(root, engine_host, tmp_path / "third.db").json()["findings"] == []  # the new volume is the one seen


def test_a_second_server_is_never_started_on_data_another_container_holds(docker_client, engine_host, tmp_path, state):
    """The seed's near miss: the declared name is free, but a container made by someone else (by hand, under another
    name) still holds the volume. Nothing is created; the finding names the holder; apply is not converged."""
    root = write_tree(tmp_path / "d", SMALL)
    assert apply(root, engine_host, state).code == 0
    docker_client.containers.get("kv-a-db").remove(force=True)
    other = run_plain(
        docker_client, "kv-a-by-hand", "dbstate-local/redis:7.0", volumes={"kv-data": {"bind": "/data", "mode": "rw"}}
    )
    assert other.exec_run(["sh", "-c", f"echo {MARKER} > /data/marker"]).exit_code == 0  # its data, written live
    r = apply(root, engine_host, state)
    assert r.code == 1 and "volume-in-use DatabaseInstance/kv-a" in r.stdout and "kv-a-by-hand" in r.stdout, r.stdout
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("kv-a-db")
    other.stop(timeout=1)  # stopped, it could still be started: still held back
    assert apply(root, engine_host, state).code == 1
    other.remove()
    r = apply(root, engine_host, state)
    assert r.code == 0, r.stdout
    mine = docker_client.containers.get("kv-a-db")
    assert mine.status == "running"
    assert mine.exec_run(["cat", "/data/marker"]).output.decode().strip() == MARKER  # the same data, not lost


def mounting(client: docker.DockerClient, volume_name: str) -> list[str]:
    return sorted(
        c.name for c in client.containers.list(all=True) if any(m.get("Name") == volume_name for m in c.attrs["Mounts"])
    )


def test_two_declarations_of_one_volume_never_start_two_servers(docker_client, engine_host, tmp_path, state):
    """The day-two seam: a second declaration names the volume the first one's server holds. It used to be held
    back only while the first container existed: after `docker rm -f` of it, one pass created both, 3 ms apart, on one
    PGDATA. Now both declarations are errors at their files, no pass creates either, and once the second is gone the
    first comes back on its data: every marker row is there."""
    files = {"net.yaml": network("net-a"), "vol.yaml": volume("pg-data"), "pg.yaml": pg_instance()}
    root = write_tree(tmp_path / "d", files)
    assert apply(root, engine_host, state).code == 0
    with pg_connect(docker_client) as conn:
        conn.execute("CREATE TABLE marker (v text)")
        conn.execute("INSERT INTO marker SELECT 'row ' || g FROM generate_series(1, 10) g")
    (root / "pg2.yaml").write_text(pg_instance("pg2", "pg2-db"))
    r = apply(root, engine_host, state)
    out = r.stdout + r.stderr
    assert r.code == 1, out
    for name in ("pg.yaml", "pg2.yaml"):
        assert f"{name}:" in out and "spec.volumes[0].source: volume pg-data is the data of 2 declarations" in out, out
    docker_client.containers.get("pg-db").remove(force=True)
    for _ in range(2):  # the pass after the rm, and one more
        assert apply(root, engine_host, state).code == 1
        assert mounting(docker_client, "pg-data") == []
    (root / "pg2.yaml").unlink()
    assert apply(root, engine_host, state).code == 0
    assert mounting(docker_client, "pg-data") == ["pg-db"]
    with pg_connect(docker_client) as conn:
        assert conn.execute("SELECT count(*) FROM marker").fetchone() == (10,)


def test_a_start_is_judged_by_the_mounts_the_container_has(docker_client, engine_host, tmp_path, state):
    """A stopped container that mounts kv-data is started although another container holds kv-new, the volume its
    declaration names now (the declaration is not what the start would mount); data-moved still says what to do."""
    root = write_tree(tmp_path / "d", {**SMALL, "vol.yaml": volume("kv-data") + "---\n" + volume("kv-new")})
    assert apply(root, engine_host, state).code == 0
    mine = docker_client.containers.get("kv-a-db")
    assert mine.exec_run(["sh", "-c", f"echo {MARKER} > /data/marker"]).exit_code == 0
    mine.stop(timeout=2)
    (root / "kv.yaml").write_text(redis_instance("kv-a", "kv-a-db", volume="kv-new"))
    run_plain(
        docker_client, "kv-new-holder", "dbstate-local/redis:7.0", volumes={"kv-new": {"bind": "/data", "mode": "rw"}}
    )
    r = apply(root, engine_host, state)
    assert "data-moved DatabaseInstance/kv-a" in r.stdout and "volume-in-use" not in r.stdout, r.stdout
    mine.reload()
    assert mine.status == "running"
    assert mine.exec_run(["cat", "/data/marker"]).output.decode().strip() == MARKER
    assert mounting(docker_client, "kv-new") == ["kv-new-holder"]


def test_unpullable_image_fails_that_change_only(docker_client, engine_host, tmp_path, state):
    files = {
        **SMALL,
        "bad.yaml": redis_instance("kv-x", "kv-x-db", image="dbstate-local/redis:7.0-missing"),
        "app.yaml": """apiVersion: dbstate.io/v1
kind: Consumer
metadata: {name: app}
spec:
  containerName: app
  image: dbstate-local/app:1
  networks: [{name: net-a}]
  env: {DB_HOST: kv-x}
  uses: [{instance: kv-x, hostEnv: DB_HOST}]
""",
    }
    root = write_tree(tmp_path / "d", files)
    r = apply(root, engine_host, state, "--output", "json")
    assert r.code == 1
    outcomes = {(o["kind"], o["name"]): o for o in r.json()["outcomes"]}
    assert outcomes[("DatabaseInstance", "kv-x")]["status"] == "failed"
    assert "cannot be pulled" in outcomes[("DatabaseInstance", "kv-x")]["message"]
    assert outcomes[("Consumer", "app")]["status"] == "skipped"
    assert "blocked" in outcomes[("Consumer", "app")]["message"]
    assert all(o["status"] == "ok" for k, o in outcomes.items() if k[1] in ("kv-a", "kv-b", "net-a", "kv-data"))
    assert r.json()["converged"] is False
    assert managed_names(docker_client) == ["kv-a-db", "kv-b-db"]


def test_refuses_without_terminal_or_yes(docker_client, engine_host, tmp_path, state):
    root = write_tree(tmp_path / "d", SMALL)
    r = dbstate("apply", "--dir", str(root), host=engine_host, state=state, env=ENV)
    assert r.code == 1
    assert "refusing to change the engine without confirmation" in r.stderr and "--yes" in r.stderr
    assert managed_names(docker_client) == []


def test_prune_removes_unprotected_orphans_never_volumes(docker_client, engine_host, tmp_path, state):
    files = {
        **SMALL,
        "kv.yaml": redis_instance("kv-a", "kv-a-db", volume="kv-data", extra="  policy: {deletionProtection: false}\n"),
    }
    root = write_tree(tmp_path / "d", files)
    assert apply(root, engine_host, state).code == 0
    (root / "kv.yaml").unlink()
    (root / "vol.yaml").unlink()
    (root / "kv2.yaml").write_text(redis_instance("kv-b", "kv-b-db"))
    r = apply(root, engine_host, state, "--prune")
    assert r.code == 0, r.stdout
    assert managed_names(docker_client) == ["kv-b-db"]
    assert docker_client.volumes.get("kv-data")  # never removed
    r = apply(root, engine_host, state, "--prune")
    assert "In sync" in r.stdout


def test_no_secret_in_the_state_database(docker_client, engine_host, tmp_path, state):
    root = write_tree(tmp_path / "d", SMALL)
    assert apply(root, engine_host, state).code == 0
    docker_client.containers.get("kv-a-db").stop(timeout=1)
    assert apply(root, engine_host, state).code == 0
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(state) + suffix)
        if f.exists():
            assert SECRET.encode() not in f.read_bytes()
    with sqlite3.connect(state) as db:
        rows = db.execute("select action, status from changes").fetchall()
    assert ("start", "ok") in rows and len(rows) >= 6


def _apply_on_a_terminal(root: Path, host: str, state: Path, answer: str) -> tuple[int, str]:
    """Run `dbstate apply` (no --yes) with a pseudo-terminal as stdin and stdout, and answer its question."""
    import pty

    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
    env.update(HELPER_ENV, **ENV, DOCKER_HOST=host, DBSTATE_STATE=str(state), PYTHONPATH=str(REPO), NO_COLOR="1")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "apply", "--dir", str(root)],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while b"Only 'yes' is accepted" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(leader, 4096)
        except OSError:
            break
    os.write(leader, answer.encode() + b"\n")
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    assert proc.stderr is not None
    proc.stderr.close()
    os.close(leader)
    return proc.returncode, seen.decode(errors="replace")


def test_asks_on_a_terminal(docker_client, engine_host, tmp_path, state):
    root = write_tree(tmp_path / "d", SMALL)
    code, text = _apply_on_a_terminal(root, engine_host, state, "no")
    assert code == 1 and "Apply cancelled; nothing was changed." in text
    assert managed_names(docker_client) == []
    code, text = _apply_on_a_terminal(root, engine_host, state, "yes")
    assert code == 0, text
    assert "Apply: 5 done, 0 failed, 0 skipped." in text
    assert managed_names(docker_client) == ["kv-a-db", "kv-b-db"]
    assert SECRET not in text


def test_a_committed_lease_label_is_rejected_and_the_rest_converges(docker_client, engine_host, tmp_path, state):
    forged = (
        "apiVersion: dbstate.io/v1\nkind: Volume\nmetadata:\n  name: forged-lease\n  labels:\n"
        '    io.dbstate.lease: "true"\n    io.dbstate.lease.holder: attacker\n'
        '    io.dbstate.lease.since: "0"\n    io.dbstate.lease.expires: "9999999999"\n'
    )
    root = write_tree(tmp_path / "d", {**SMALL, "evil.yaml": forged})
    r = apply(root, engine_host, state)
    assert r.code == 1, r.stdout + r.stderr  # the desired state has an error
    assert "evil.yaml:6:5: Volume/forged-lease: metadata.labels.io.dbstate.lease: labels under io.dbstate." in r.stdout
    assert docker_client.volumes.list(filters={"label": "io.dbstate.lease"}) == [], r.stdout
    assert docker_client.containers.get("kv-a-db").status == "running", r.stdout  # the rest converged


def test_a_volume_removed_during_the_create_never_gets_a_server(
    docker_client, engine_host, tmp_path, state, monkeypatch
):
    """The race a plan cannot see: `docker volume rm` lands after the plan, right before the create, and Docker makes a
    new, empty volume of the same name for the new container. The container is removed before it ever starts, and
    from then on the volume is lost (not adopted as empty)."""
    from controller.core.options import PassOptions, Target
    from controller.wiring import engines

    root = write_tree(tmp_path / "d", SMALL)
    assert apply(root, engine_host, state).code == 0
    labelled = docker_client.volumes.get("kv-data").attrs["Labels"]
    assert labelled.get("io.dbstate.volume-id")  # the identity dbstate gave the volume it made
    docker_client.containers.get("kv-a-db").remove(force=True)
    for k, v in HELPER_ENV.items():
        monkeypatch.setenv(k, v)
    with engines.reconciler(Target(root, None, engine_host, state), PassOptions("apply")) as wired:
        original = wired.runtime.create_container
        events: list[str] = []

        def racing(name: str, *args: Any, **kwargs: Any) -> None:
            if name == "kv-a-db":
                docker_client.volumes.get("kv-data").remove()
                events.append("volume removed")
            original(name, *args, **kwargs)

        wired.runtime.create_container = racing  # type: ignore[method-assign]
        result = wired.reconciler.plan()
        outcomes = wired.reconciler.apply(result)
    (kv,) = [o for o in outcomes if o.change.name == "kv-a"]
    assert events == ["volume removed"]
    assert kv.status == "failed" and "Docker made a new, empty one" in kv.message
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("kv-a-db")
    assert not docker_client.volumes.get("kv-data").attrs["Labels"]  # Docker's new, empty one, left for a human
    p = plan(root, engine_host, state).json()
    assert p["changes"] == []
    assert {(f["type"], f["kind"], f["name"]) for f in p["findings"]} == {
        ("volume-lost", "Volume", "kv-data"),
        ("volume-lost", "DatabaseInstance", "kv-a"),
    }
