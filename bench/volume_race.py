"""The volume race under a running controller: `docker rm -f` of a database's container, then `docker volume rm` of
its volume, while `dbstate run` reacts to the first. Each trial writes a marker file into the volume first; a
container running afterwards must see that marker (its own data), or not be running at all (volume-lost, until
acknowledged). Counts the trials where a server started on an empty volume: the target is 0.

    .venv/bin/python -m bench.volume_race [--trials 50]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from bench.common import bench_engine, controller_env

HEAD = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: race-net}
"""
INSTANCE = """apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: race-vol-N}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: race-N}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: race-N-redis-1
  networks: [{name: race-net}]
  volumes: [{source: race-vol-N, target: /data}]
  env: {REDIS_PASSWORD: "${BENCH_PASSWORD}"}
  command: [sleep, infinity]
  restartPolicy: "no"
  auth: {method: password, password: "${BENCH_PASSWORD}"}
"""


def state(trials: int) -> str:
    """One instance per trial: a container removed three times within a minute would be crash-looping, and its
    restarts would back off (engine/loop.py), which is not what this measures."""
    return "---\n".join([HEAD] + [INSTANCE.replace("-N", f"-{n}") for n in range(trials)])


def running(client: docker.DockerClient, name: str) -> docker.models.containers.Container | None:
    try:
        c = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    return c if c.status == "running" else None


def wait_running(client: docker.DockerClient, name: str, timeout: float = 120) -> docker.models.containers.Container:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = running(client, name)
        if c is not None:
            return c
        time.sleep(0.1)
    raise TimeoutError(f"{name} not running within {timeout} s")


def trial(client: docker.DockerClient, n: int, env: dict[str, str], ack: list[str]) -> str:
    """One trial's verdict: kept (the old volume, marker seen), lost (not running, volume-lost), or EMPTY (a server
    running on a volume without the marker: data lost)."""
    name, volume = f"race-{n}-redis-1", f"race-vol-{n}"
    c = wait_running(client, name)
    marker = f"marker-{n}"
    c.exec_run(["sh", "-c", f"echo {marker} > /data/marker"])
    c.remove(force=True)
    with contextlib.suppress(docker.errors.APIError):  # the controller was faster: its new container pins the volume
        client.volumes.get(volume).remove()
    time.sleep(2.0)
    c = running(client, name)
    if c is None:
        subprocess.run([*ack, "ack", "volume-lost", volume], env=env, check=True, capture_output=True)
        return "lost"
    seen = c.exec_run(["cat", "/data/marker"]).output.decode().strip()
    return "kept" if seen == marker else "EMPTY"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50)
    args = p.parse_args()
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory() as tmp:
        root, env = controller_env(eng.host, tmp, state(args.trials))
        dbstate = [sys.executable, "-m", "controller"]
        with (Path(tmp) / "run.log").open("w") as log:
            proc = subprocess.Popen(
                [*dbstate, "run", "--dir", str(root), "--listen", "", "--probe-interval", "0", "--resync", "5"],
                env=env,
                stdout=log,
                stderr=log,
            )
            try:
                verdicts = [trial(client, n, env, dbstate) for n in range(args.trials)]
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        counts = {v: verdicts.count(v) for v in ("kept", "lost", "EMPTY")}
        print(f"{args.trials} trials of docker rm -f then docker volume rm under dbstate run: {counts}")
        print(f"  servers started on an empty volume: {counts['EMPTY']} (target 0)")
        return 1 if counts["EMPTY"] else 0


if __name__ == "__main__":
    sys.exit(main())
