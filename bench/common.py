"""What the benchmarks share: a desired state of N redis instances, each with a volume, on one network."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the benchmarks measure the databases' own work: no exporter beside each (bench/monitoring.py measures those, and
# sets this itself); with the site default on, every bench's apply failed pulling the exporters' images
ENV = {"BENCH_PASSWORD": "bench-only-password", "DBSTATE_MONITORING": "off"}
SLEEP = "[sleep, infinity]"  # the plan benchmark needs containers, not servers
REDIS = '["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]'


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call of `fn`, `repeat` times."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(xs: list[float]) -> str:
    p95 = sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]
    return f"median {statistics.median(xs) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def write_state(
    root: Path, n: int, command: str = REDIS, *, head: str = "", network: str = "", extra: str = ""
) -> None:
    """N redis instances, each with a volume, on one network; `head`: documents before them (a Host), `network`: the
    network's spec (`{driver: overlay}`), `extra`: lines added to each instance's spec."""
    net_spec = f"spec: {network}\n" if network else ""
    docs = [f"{head}apiVersion: dbstate.io/v1\nkind: Network\nmetadata: {{name: bench-net}}\n{net_spec}"]
    for i in range(n):
        docs.append(f"apiVersion: dbstate.io/v1\nkind: Volume\nmetadata: {{name: bench-vol-{i}}}\n")
        docs.append(f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: kv-{i}}}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: kv-{i}-redis-1
  networks: [{{name: bench-net, aliases: [kv-{i}]}}]
  volumes: [{{source: bench-vol-{i}, target: /data}}]
  env: {{REDIS_PASSWORD: "${{BENCH_PASSWORD}}"}}
  command: {command}
  auth: {{method: password, password: "${{BENCH_PASSWORD}}"}}
{extra}""")
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench.yaml").write_text("---\n".join(docs))


def realise(client: Any, state: Any, parallel: int, subnet: str | None = None) -> None:
    """Create what `state` declares with raw docker-py and the fewest calls (this is the floor the apply benchmark
    compares with): the network; per instance its volume, the container with its network and alias in the create
    call, and start; instances on a thread pool of `parallel`."""
    import docker

    from controller.core import labels
    from controller.core.secrets import reveal

    api = client.api
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]) if subnet else None
    for net in state.networks:
        api.create_network(net.metadata.name, driver="bridge", labels=labels.object_labels(net), ipam=ipam)
    vols = {v.metadata.name: v for v in state.volumes}

    def one(inst: Any) -> None:
        mount = inst.spec.volumes[0]
        api.create_volume(mount.source, driver="local", labels=labels.object_labels(vols[mount.source]))
        att = inst.spec.networks[0]
        c = api.create_container(
            inst.spec.image,
            name=inst.container_name,
            command=list(inst.spec.command),
            environment={k: reveal(v) for k, v in inst.spec.env.items()},
            labels=labels.container_labels(inst, None),
            host_config=api.create_host_config(
                mounts=[docker.types.Mount(mount.target, mount.source)], restart_policy={"Name": "unless-stopped"}
            ),
            networking_config=api.create_networking_config(
                {att.name: api.create_endpoint_config(aliases=list(att.aliases))}
            ),
        )
        api.start(c["Id"])

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, state.instances))


@contextmanager
def bench_engine() -> Iterator[tuple[Any, Any]]:
    """The benchmarks' private engine ("bench") with the stand-in images, and a client; everything dbstate made there
    is removed before and after, and the engine is stopped."""
    from devtools import engine as devengine

    eng = devengine.start("bench")
    client = eng.client(timeout=600)
    try:
        devengine.ensure_images(client, log=lambda m: print(m, file=sys.stderr))
        devengine.cleanup(client)
        yield eng, client
    finally:
        devengine.cleanup(client)
        client.close()
        eng.stop()


def controller_env(host: str, tmp: str, text: str) -> tuple[Path, dict[str, str]]:
    """A desired-state directory holding `text` under `tmp`, and the environment a `dbstate` process of the
    benchmarks runs with (this checkout, the engine, a state database of its own)."""
    import os

    root = Path(tmp) / "ds"
    root.mkdir()
    (root / "state.yaml").write_text(text)
    repo = str(Path(__file__).resolve().parent.parent)
    return root, {**os.environ, **ENV, "DOCKER_HOST": host, "PYTHONPATH": repo, "DBSTATE_STATE": f"{tmp}/s.db"}


def dbstate(env: dict[str, str], *args: str) -> float:
    """`dbstate ARGS` as a whole process with `env` (the engine, the state database, this checkout on PYTHONPATH):
    its seconds from exec to exit; a failure stops the benchmark with the end of its output."""
    import subprocess

    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "controller", *args], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-800:]
    return elapsed
