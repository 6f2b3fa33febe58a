"""Benchmark of `dbstate plan` with 50 and 500 declared instances, all in sync, against the floor measured in the same
run: raw docker-py listing containers, networks and volumes once (the fewest API calls that observe them).

    .venv/bin/python -m bench.plan [--sizes 50 500] [--repeat 15]

It starts its own private engine ("bench"), creates the instances (redis stand-ins running `sleep`, one volume each,
on one network), measures, and removes everything it created. Printed:
  floor            3 list calls through docker.APIClient, in-process
  floor, process   the same 3 calls as a whole process (python -c: start, import docker-py, list, exit): what a
                   one-shot `dbstate plan` compares with
  observe+diff     in-process: DockerEngine.observe (version, 3 lists, the inspects) + diff, a new engine each time
                   (cold alias cache: one inspect per declared container, as a one-shot `dbstate plan` does)
  ... warm         the same with the EndpointID->aliases cache filled, as in the long-running loop
  whole process    `dbstate plan --output json` as a subprocess, from exec to exit: cold (a new state database each
                   time, so every declared container is inspected) and warm (the state database of the previous run)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from bench.common import ENV, SLEEP, bench_engine, fmt, realise, timed, write_state
from controller.adapters import desired
from controller.adapters.docker import DockerEngine
from controller.core import diff
from devtools import engine as devengine

REPO = Path(__file__).resolve().parent.parent


def run_size(client: docker.DockerClient, host: str, n: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "desired"
        write_state(root, n, SLEEP)
        env = ENV
        loaded = desired.load(root, environ=env)
        assert not loaded.errors, loaded.errors[:3]
        state = loaded.state
        t0 = time.perf_counter()
        realise(client, state, 8, subnet="10.215.64.0/20")  # 500 containers need more than a /24
        print(f"\n{n} instances: created and started in {time.perf_counter() - t0:.1f}s")
        names = [i.container_name for i in state.instances]

        floor_api = docker.APIClient(base_url=host, version="1.41")

        def floor() -> None:
            floor_api.containers(all=True)
            floor_api.networks()
            floor_api.volumes()

        def cold() -> None:
            with DockerEngine(host) as engine:
                p = diff.diff(state, engine.observe(inspect=names))
            assert p.in_sync, p.changes[:3]

        warm_engine = DockerEngine(host)
        warm_engine.observe(inspect=names)

        def warm() -> None:
            p = diff.diff(state, warm_engine.observe(inspect=names))
            assert p.in_sync, p.changes[:3]

        proc_env = {**os.environ, **env, "DOCKER_HOST": host, "PYTHONPATH": str(REPO)}
        floor_script = (
            f"import docker; api = docker.APIClient(base_url={host!r}, version='1.41'); "
            "api.containers(all=True); api.networks(); api.volumes()"
        )

        def floor_whole() -> None:
            subprocess.run([sys.executable, "-c", floor_script], env=proc_env, check=True)

        warm_state = Path(tmp) / "warm.db"

        def whole(state: Path | None) -> None:
            with tempfile.TemporaryDirectory() as fresh:
                run_env = {**proc_env, "DBSTATE_STATE": str(state or Path(fresh) / "state.db")}
                r = subprocess.run(
                    [sys.executable, "-m", "controller", "plan", "--dir", str(root), "--output", "json"],
                    env=run_env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            assert r.returncode == 0, r.stderr[-500:] + r.stdout[-500:]

        floor(), cold(), warm(), whole(warm_state)  # warm up the engine, the page cache and the warm state
        results = {
            "floor": timed(floor, repeat),
            "cold": timed(cold, repeat),
            "warm": timed(warm, repeat),
            "floor_whole": timed(floor_whole, repeat),
            "whole_cold": timed(lambda: whole(None), repeat),
            "whole": timed(lambda: whole(warm_state), repeat),
        }
        warm_engine.close()
        floor_api.close()
        f = statistics.median(results["floor"])
        print(f"  floor (3 lists)                 {fmt(results['floor'])}")
        for key, label in (("cold", "observe+diff, cold cache"), ("warm", "observe+diff, warm cache")):
            ratio = statistics.median(results[key]) / f
            print(f"  {label:<31} {fmt(results[key])}   {ratio:5.1f}x floor")
        fw = statistics.median(results["floor_whole"])
        print(f"  floor, whole process            {fmt(results['floor_whole'])}")
        for key, label in (("whole_cold", "whole process, cold state"), ("whole", "whole process, warm state")):
            ratio = statistics.median(results[key]) / fw
            print(f"  {label:<31} {fmt(results[key])}   {ratio:5.1f}x floor (process)")
        devengine.cleanup(client)
        return {k: statistics.median(v) for k, v in results.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args()
    with bench_engine() as (eng, client):
        print(f"engine: {eng.host}   cores: {os.cpu_count()}")
        summary = {n: run_size(client, eng.host, n, args.repeat) for n in args.sizes}
        print(
            "\nsummary (medians)       floor  in-process cold/warm   x floor   floor(process)  "
            "whole process cold/warm   x floor(process)"
        )
        for n, r in summary.items():
            print(
                f"  {n:4d} instances  {r['floor'] * 1000:7.1f}ms   "
                f"{r['cold'] * 1000:6.0f}ms {r['warm'] * 1000:5.0f}ms   "
                f"{r['cold'] / r['floor']:5.1f}x {r['warm'] / r['floor']:4.1f}x   {r['floor_whole'] * 1000:7.0f}ms   "
                f"{r['whole_cold'] * 1000:6.0f}ms {r['whole'] * 1000:5.0f}ms   "
                f"{r['whole_cold'] / r['floor_whole']:5.1f}x {r['whole'] / r['floor_whole']:4.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
