"""Benchmark of a Host with `mode: swarm` on a real two-node swarm (`devtools.engine.TwoNodeSwarm`: two private
engines in network namespaces of their own): a PostgreSQL pinned to the worker's node, probed and backed up through
the worker's own engine (`spec.nodes`), against the floor of the same `docker exec psql` on that engine; then what a
node failure does, twice, each timed from the failure:

- the worker cut off the network (its engine and task run on): when the manager says the node is down, when
  `dbstate plan` reports it (and whether it plans anything), and, mended, whether Swarm restarted the task and when
  the rows are served again;
- the worker's engine shut down (its task stops with it): the same, and how long a `dbstate plan` pass takes while the
  node's engine does not answer.

    .venv/bin/python -m bench.swarm_nodes [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker

from bench.common import ENV, bench_engine, fmt, timed
from devtools import engine as devengine

REPO = Path(__file__).resolve().parent.parent
IMAGE = "dbstate-local/postgres:15"
SERVICE = "com.docker.swarm.service.name=nd-pg"
PW = "bench-nodes-pw-1"


def documents(manager: str, worker: str) -> str:
    return f"""apiVersion: dbstate.io/v1
kind: Host
metadata: {{name: nd}}
spec: {{endpoint: "{manager}", mode: swarm, nodes: {{db2: {{endpoint: "{worker}"}}}}}}
---
apiVersion: dbstate.io/v1
kind: Network
metadata: {{name: nd-net}}
spec: {{driver: overlay}}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {{name: nd-pg-data}}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: nd-pg}}
spec:
  engine: postgres
  version: "15"
  image: {IMAGE}
  node: db2
  networks: [{{name: nd-net, aliases: [nd-db]}}]
  volumes: [{{source: nd-pg-data, target: /var/lib/postgresql/data}}]
  env: {{POSTGRES_USER: app, POSTGRES_PASSWORD: "${{ND_PW}}", POSTGRES_DB: app}}
  auth: {{method: scram-sha-256, user: app, password: "${{ND_PW}}", database: app}}
  monitoring: false
  policy: {{upgrade: recreate, backup: {{beforeChange: false}}}}
"""


def dbstate(env: dict[str, str], *args: str) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "controller", *args], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - t0, r.returncode, r.stdout


def psql(client: docker.DockerClient, sql: str) -> str | None:
    try:
        tasks = client.containers.list(filters={"label": SERVICE})
    except (docker.errors.DockerException, OSError):
        return None
    if len(tasks) != 1:
        return None
    code, out = tasks[0].exec_run(["psql", "-U", "app", "-d", "app", "-Atc", sql])
    return out.decode().strip() if code == 0 and isinstance(out, bytes) else None


def until(what: Callable[[], object], timeout: float = 300) -> float:
    t0 = time.perf_counter()
    while not what():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"not within {timeout:.0f}s")
        time.sleep(0.2)
    return time.perf_counter() - t0


def node_state(manager: docker.DockerClient) -> str:
    (node,) = [n for n in manager.api.nodes() if (n["Spec"].get("Labels") or {}).get("io.dbstate.node") == "db2"]
    return str(node["Status"]["State"])


def failure(
    two: devengine.TwoNodeSwarm, env: dict[str, str], root: Path, rows: int, kind: str
) -> dict[str, float | str | bool]:
    """One failure of the worker (`kind`: partition or shutdown), and its mending, timed from the failure."""
    before = two.worker.containers.list(filters={"label": SERVICE})[0].id
    plan = ["plan", "--dir", str(root), "--output", "json"]
    t0 = time.perf_counter()
    two.partition_worker(True) if kind == "partition" else two.stop_worker()
    out: dict[str, float | str | bool] = {"the failure itself took": time.perf_counter() - t0}
    until(lambda: node_state(two.manager) == "down")
    out["manager says down, at"] = time.perf_counter() - t0
    seconds, code, stdout = dbstate(env, *plan)
    found = json.loads(stdout) if stdout.startswith("{") else {}
    out["plan reported it, at"] = time.perf_counter() - t0
    out["plan pass while down"] = seconds
    out["plan findings"] = ",".join(sorted({f["type"] for f in found.get("findings", [])})) or f"exit {code}"
    out["plan changes"] = str(len(found.get("changes", [])))
    t1 = time.perf_counter()
    two.partition_worker(False) if kind == "partition" else two.restart_worker()
    until(lambda: node_state(two.manager) == "ready")
    out["mended: node ready after"] = time.perf_counter() - t1
    until(lambda: psql(two.worker, "SELECT count(*) FROM marker") == str(rows))
    out["mended: every row after"] = time.perf_counter() - t1
    after = two.worker.containers.list(filters={"label": SERVICE})[0].id
    out["task restarted by Swarm"] = after != before
    _s, code, stdout = dbstate(env, *plan)
    out["plan after"] = "in sync" if code == 0 and json.loads(stdout)["findings"] == [] else f"exit {code}"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with bench_engine() as (_eng, source):
        two = devengine.TwoNodeSwarm(source, [IMAGE])
        try:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "ds"
                root.mkdir()
                (root / "state.yaml").write_text(documents(two.engines[0].host, two.engines[1].host))
                env = {
                    **os.environ,
                    **ENV,
                    "ND_PW": PW,
                    "DOCKER_HOST": two.engines[0].host,
                    "PYTHONPATH": str(REPO),
                    "DBSTATE_STATE": f"{tmp}/s.db",
                    "DBSTATE_BACKUP_DIR": f"{tmp}/backups",
                }
                print(f"two-node swarm: manager {two.addresses[0]}, worker {two.addresses[1]}; cores: {os.cpu_count()}")
                seconds, code, _out = dbstate(env, "apply", "--yes", "--dir", str(root))
                assert code == 0, _out[-800:]
                print(f"dbstate apply (network, volume on the worker, service pinned there): {seconds:.1f}s")
                until(lambda: psql(two.worker, "SELECT 1") == "1")
                series = f"generate_series(1, {args.rows:d})"
                fill = f"INSERT INTO marker SELECT i, repeat('x', 100) FROM {series} i"  # noqa: S608 - a number
                psql(two.worker, f"CREATE TABLE marker (id int primary key, t text); {fill}")
                plan = ["plan", "--dir", str(root), "--output", "json"]
                plain_t = timed(lambda: dbstate(env, *plan), args.repeat)
                probe_t = timed(lambda: dbstate(env, *plan, "--probe"), args.repeat)
                floor_t = timed(lambda: psql(two.worker, "SELECT 1"), args.repeat)
                print(f"\nfloor: docker exec psql on the worker's engine  {fmt(floor_t)}")
                print(f"dbstate plan (a whole process)                 {fmt(plain_t)}")
                print(f"dbstate plan --probe (the probe by the worker) {fmt(probe_t)}")
                backup = ["backup", "nd-pg", "--dir", str(root), "--output", "json"]
                seconds, code, stdout = dbstate(env, *backup)
                assert code == 0, stdout[-800:]
                counted = json.loads(stdout)[0]["counts"]["app/public.marker"]
                (task,) = two.worker.containers.list(filters={"label": SERVICE})
                t0 = time.perf_counter()
                dumped = task.exec_run(["sh", "-c", "pg_dump -U app -Fc app > /dev/null"])[0]
                floor = time.perf_counter() - t0
                assert dumped == 0
                print(
                    f"dbstate backup by the worker's engine ({counted} rows): {seconds:.1f}s; "
                    f"floor, pg_dump -Fc there: {floor:.1f}s"
                )
                for kind in ("partition", "shutdown"):
                    print(f"\nnode failure: {kind} of the worker")
                    for k, v in failure(two, env, root, args.rows, kind).items():
                        print(f"  {k:<28} {v:.1f}s" if isinstance(v, float) else f"  {k:<28} {v}")
        finally:
            two.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
