"""Benchmark of a Host with `mode: swarm` on a single-node swarm (a private engine of its own): `dbstate apply` of N
Redis instances as services (one replica each, pinned by the node label, secrets as files) against raw docker-py
creating the same services; a steady pass (observe+diff, and a whole `dbstate plan` process) against the floor of
listing services, tasks, containers, networks and volumes; and the repair of a killed task, which is Swarm's
(dbstate only reports it), timed from the kill until the service runs a task again.

    .venv/bin/python -m bench.swarm [--instances 50] [--repeat 7] [--kills 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
import docker.types

from bench.common import ENV, fmt, timed, write_state
from bench.common import dbstate as run_dbstate
from controller.adapters import desired
from controller.adapters.docker import SwarmRuntime
from controller.core import diff
from devtools import engine as devengine

REPO = Path(__file__).resolve().parent.parent
SERVICE = "com.docker.swarm.service.name"
REDIS = '["sh", "-c", "exec redis-server --requirepass \\"$$(cat $$REDIS_PASSWORD_FILE)\\""]'


def write(root: Path, host: str, n: int) -> None:
    head = f'apiVersion: dbstate.io/v1\nkind: Host\nmetadata: {{name: sw}}\nspec: {{endpoint: "{host}", mode: swarm}}\n'
    head += "---\n"
    write_state(root, n, REDIS, head=head, network="{driver: overlay}", extra="  node: db1\n  monitoring: false\n")


def floor_create(client: docker.DockerClient, n: int) -> float:
    """The same services with raw docker-py: one create each, then waited for until every task of them runs."""
    api = client.api
    t0 = time.perf_counter()
    ids = set()
    for i in range(n):
        spec = docker.types.ContainerSpec(
            "dbstate-local/redis:7.0", args=["redis-server"], mounts=[docker.types.Mount("/data", f"floor-vol-{i}")]
        )
        template = docker.types.TaskTemplate(
            spec,
            placement=docker.types.Placement(constraints=["node.labels.io.dbstate.node == db1"]),
            networks=[docker.types.NetworkAttachmentConfig("bench-net", aliases=[f"floor-{i}"])],
        )
        made = api.create_service(template, name=f"floor-{i}", mode=docker.types.ServiceMode("replicated", replicas=1))
        ids.add(made["ID"])

    def running() -> int:
        tasks = api.tasks(filters={"desired-state": "running"})
        return sum(1 for t in tasks if t["ServiceID"] in ids and t["Status"]["State"] == "running")

    while running() < n:
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    for i in range(n):
        api.remove_service(f"floor-{i}")
    while any(c["Labels"].get(SERVICE, "").startswith("floor-") for c in api.containers(all=True)):
        time.sleep(0.2)
    for i in range(n):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(f"floor-vol-{i}", force=True)
    return elapsed


def repair(client: docker.DockerClient, service: str) -> float:
    """Seconds from killing the service's task until a new task of it runs."""
    api = client.api
    (old,) = api.containers(filters={"label": f"com.docker.swarm.service.name={service}"})
    t0 = time.perf_counter()
    api.kill(old["Id"])
    while True:
        running = [
            t
            for t in api.tasks(filters={"service": service})
            if t["Status"]["State"] == "running" and t["Status"]["ContainerStatus"]["ContainerID"] != old["Id"]
        ]
        if running:
            return time.perf_counter() - t0
        time.sleep(0.05)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--kills", type=int, default=5)
    args = p.parse_args()
    eng = devengine.start("swarm")
    client = eng.client(timeout=600)
    try:
        devengine.ensure_images(client, log=lambda m: print(m, file=sys.stderr))
        devengine.swarm_leave(client)
        devengine.cleanup(client)
        devengine.swarm_init(client, ("io.dbstate.node", "db1"))
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "ds"
            write(root, eng.host, args.instances)
            env = {
                **os.environ,
                **ENV,
                "DOCKER_HOST": eng.host,
                "PYTHONPATH": str(REPO),
                "DBSTATE_STATE": f"{tmp}/s.db",
            }
            print(f"engine: {eng.host} (single-node swarm)   cores: {os.cpu_count()}   instances: {args.instances}")
            applied = run_dbstate(env, "apply", "--yes", "--dir", str(root), "--parallel", "8")
            print(
                f"\ndbstate apply, {args.instances} services (secret, service, start, waited running): {applied:.1f}s"
            )
            floor = floor_create(client, args.instances)
            print(f"floor: raw docker-py, {args.instances} services created and waited running:        {floor:.1f}s")

            state = desired.load(root, environ={**ENV}).state
            names = [i.container_name for i in state.instances]
            runtime = SwarmRuntime(eng.host)
            api = client.api

            def lists() -> None:
                api.services()
                api.tasks()
                api.containers(all=True)
                api.networks()
                api.volumes()

            def warm() -> None:
                plan = diff.diff(state, runtime.observe(inspect=names))
                assert plan.in_sync, plan.changes[:3]

            lists(), warm()
            floor_t, warm_t = timed(lists, args.repeat), timed(warm, args.repeat)
            whole_t = timed(lambda: run_dbstate(env, "plan", "--dir", str(root), "--output", "json"), args.repeat)
            runtime.close()
            print(f"\nfloor (5 lists)           {fmt(floor_t)}")
            ratio = statistics.median(warm_t) / statistics.median(floor_t)
            print(f"observe+diff, warm        {fmt(warm_t)}   {ratio:4.1f}x floor")
            print(f"whole process (plan)      {fmt(whole_t)}")
            kills = [repair(client, f"kv-{i}-redis-1") for i in range(min(args.kills, args.instances))]
            print(f"\nrepair of a killed task (Swarm's): {fmt(kills)}  ({len(kills)} kills)")
    finally:
        devengine.swarm_leave(client)
        devengine.cleanup(client)
        client.close()
        eng.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
