"""Benchmark of what the exporters (spec.monitoring) cost the controller: a pass over N real Redis servers without
exporters, then `dbstate apply` making the N exporters (each one's ACL login through redis-cli, its container), then
the same pass with the N exporters in sync: all in the same run, against the floor (raw docker-py listing containers,
networks and volumes once).

    .venv/bin/python -m bench.monitoring [--instances 50] [--repeat 7]

It starts its own private engine ("bench") with the stand-in images (the exporters are Debian's
prometheus-redis-exporter), and removes everything it created. Printed, per phase:
  floor            3 list calls through docker.APIClient, in-process
  observe+diff     in-process, warm alias cache: what each pass of `dbstate run` spends reading and diffing
  whole process    `dbstate plan --output json` as a subprocess, warm state database
and the apply of the exporters, and the memory of a few exporters as the engine reports it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from bench.common import ENV, REDIS, bench_engine, dbstate, fmt, realise, timed, write_state
from controller.adapters import desired
from controller.adapters.docker import DockerEngine
from controller.core import diff

REPO = Path(__file__).resolve().parent.parent
IMAGE = {"DBSTATE_REDIS_EXPORTER_IMAGE": "dbstate-local/redis-exporter:1.45"}


def measure(client: docker.DockerClient, host: str, root: Path, env: dict[str, str], repeat: int) -> dict[str, Any]:
    state = desired.load(root, environ=env).state
    names = [i.container_name for i in state.instances]
    api = docker.APIClient(base_url=host, version="1.41")
    engine = DockerEngine(host)
    proc_env = {**os.environ, **env, "DOCKER_HOST": host, "PYTHONPATH": str(REPO)}

    def floor() -> None:
        api.containers(all=True)
        api.networks()
        api.volumes()

    def warm() -> None:
        p = diff.diff(state, engine.observe(inspect=names))
        assert p.in_sync, p.changes[:3]

    def whole() -> None:
        dbstate(proc_env, "plan", "--dir", str(root), "--output", "json")

    try:
        floor(), warm(), whole()
        out: dict[str, Any] = {
            "containers": len(client.containers.list(all=True)),
            "floor": timed(floor, repeat),
            "warm": timed(warm, repeat),
            "whole": timed(whole, repeat),
        }
    finally:
        engine.close()
        api.close()
    return out


def show(label: str, r: dict[str, Any]) -> None:
    f = statistics.median(r["floor"])
    print(f"\n{label} ({r['containers']} containers)")
    print(f"  floor (3 lists)            {fmt(r['floor'])}")
    print(f"  observe+diff, warm         {fmt(r['warm'])}   {statistics.median(r['warm']) / f:5.1f}x floor")
    print(f"  whole process (plan)       {fmt(r['whole'])}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory() as tmp:
        print(f"engine: {eng.host}   cores: {os.cpu_count()}   instances: {args.instances} (real redis-server)")
        root = Path(tmp) / "desired"
        write_state(root, args.instances, REDIS)
        off = {**ENV, "DBSTATE_MONITORING": "off", "DBSTATE_STATE": f"{tmp}/state.db"}
        on = {**ENV, **IMAGE, "DBSTATE_MONITORING": "on", "DBSTATE_STATE": f"{tmp}/state.db"}
        t0 = time.perf_counter()
        realise(client, desired.load(root, environ=off).state, 8)
        print(f"servers created and started in {time.perf_counter() - t0:.1f}s")
        without = measure(client, eng.host, root, off, args.repeat)
        show("without exporters", without)

        run_env = {**os.environ, **on, "DOCKER_HOST": eng.host, "PYTHONPATH": str(REPO)}
        made = dbstate(run_env, "apply", "--yes", "--dir", str(root), "--parallel", "8")
        print(f"\napply: {args.instances} exporters (login + container each) in {made:.1f}s")
        with_ = measure(client, eng.host, root, on, args.repeat)
        show("with exporters", with_)
        mem = [
            client.api.stats(f"kv-{i}-redis-1-exporter", stream=False)["memory_stats"].get("usage", 0)
            for i in range(min(5, args.instances))
        ]
        print(
            f"\nexporter memory (engine's figure, {len(mem)} of them): median {statistics.median(mem) / 2**20:.1f} MiB"
        )
        w0, w1 = statistics.median(without["warm"]), statistics.median(with_["warm"])
        p0, p1 = statistics.median(without["whole"]), statistics.median(with_["whole"])
        print(
            f"\nsummary (medians)  observe+diff {w0 * 1000:.0f} ms -> {w1 * 1000:.0f} ms ({w1 / w0:.2f}x);  "
            f"whole plan {p0 * 1000:.0f} ms -> {p1 * 1000:.0f} ms ({p1 / p0:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
