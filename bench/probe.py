"""Benchmark of probing the six instances of `examples/local` (four PostgreSQL, one MariaDB, one Redis: the seed's
shape), against the floor measured in the same run: the client libraries alone, one connection and one version query
per server, all six at once (the fewest round trips that learn the six versions).

    .venv/bin/python -m bench.probe [--repeat 20] [--timeout 2]

It starts its own private engine ("bench"), applies the example there, waits for every server, measures, and removes
everything it created. Printed:
  floor             psycopg / pymysql / redis-py: connect, one version query, close; six threads
  probe_all         dbstate's probes: the same logins plus the security facts (pg_hba rules, password_encryption,
                    accounts, an unauthenticated Redis command); six threads
  one dead          the same with one PostgreSQL container paused (its TCP handshake completes, nothing answers):
                    it costs its timeout, the other five are not held up
  plan / plan --probe   the whole `dbstate plan` process, without and with probes
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pymysql
import redis

from bench.common import bench_engine, fmt, timed
from controller.adapters import desired, probes
from controller.adapters.docker import DockerEngine
from controller.core import health, spec
from controller.core.options import PassOptions, Target
from controller.core.secrets import reveal
from controller.wiring import engines

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples/local"
ENV_FILE = EXAMPLE / "demo.env"


def floor_one(inst: spec.DatabaseInstance, address: str, timeout: float) -> str:
    a = inst.spec.auth
    password = reveal(a.password) if a.password else None
    if inst.spec.engine is spec.Engine.POSTGRES:
        with psycopg.connect(
            host=address, user=a.user, password=password, dbname=a.database, connect_timeout=int(timeout)
        ) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    if inst.spec.engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
        with pymysql.connect(host=address, user=a.user, password=password or "", connect_timeout=timeout) as conn:
            return str(conn.get_server_info())
    client = redis.Redis(host=address, password=password, socket_timeout=timeout, driver_info=None)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args(argv)
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory() as tmp:
        state_db = Path(tmp) / "state.db"
        with engines.reconciler(Target(EXAMPLE, ENV_FILE, eng.host, state_db), PassOptions("apply")) as wired:
            result = wired.reconciler.plan()
            outcomes = wired.reconciler.apply(result)
            assert all(o.status == "ok" for o in outcomes), [o.message for o in outcomes if o.status != "ok"]
        loaded = desired.load(EXAMPLE, ENV_FILE)
        instances = loaded.state.instances
        engine = DockerEngine(eng.host)
        try:
            observed = engine.observe()
        finally:
            engine.close()
        addresses = {}
        for inst in instances:
            c = observed.container(inst.container_name)
            assert c is not None
            addresses[inst.metadata.name] = health.probe_address(c)
        t0 = time.monotonic()
        while True:
            results = probes.probe_all(instances, observed, timeout=args.timeout)
            if all(r.reachable for r in results.values()):
                break
            if time.monotonic() - t0 > 120:
                raise SystemExit(f"servers not up: {[r.error for r in results.values() if not r.reachable]}")
            time.sleep(1)
        print(f"{len(instances)} instances up after {time.monotonic() - t0:.1f}s; repeat {args.repeat}")
        pool = ThreadPoolExecutor(len(instances))

        def floor() -> None:
            jobs = [(i, addresses[i.metadata.name]) for i in instances]
            list(pool.map(lambda j: floor_one(j[0], str(j[1]), args.timeout), jobs))

        def ours() -> None:
            rs = probes.probe_all(instances, observed, timeout=args.timeout)
            assert all(r.reachable for r in rs.values())

        floor()  # warm the imports and the servers' caches
        ours()
        f = timed(floor, args.repeat)
        o = timed(ours, args.repeat)
        print(f"floor (connect + version, 6 threads)      {fmt(f)}")
        ratio = statistics.median(o) / statistics.median(f)
        print(f"probe_all (dbstate, with security facts)  {fmt(o)}   {ratio:.2f}x floor")
        per = {r.instance: r.rtt_ms for r in probes.probe_all(instances, observed, timeout=args.timeout).values()}
        print("  per instance (ms to log in): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(per.items())))

        victim = client.containers.get("backstage-db")
        victim.pause()
        try:
            dead = timed(lambda: probes.probe_all(instances, observed, timeout=args.timeout), max(3, args.repeat // 4))
            rs = probes.probe_all(instances, observed, timeout=args.timeout)
            others = [r.rtt_ms or 0 for n, r in rs.items() if n != "backstage-db"]
            print(
                f"{f'one dead (paused, timeout {args.timeout:g}s)':<42}{fmt(dead)}   "
                f"dead: {rs['backstage-db'].error}; the other five at most {max(others):.0f} ms"
            )
        finally:
            victim.unpause()

        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
        env.update(DOCKER_HOST=eng.host, DBSTATE_STATE=str(state_db), PYTHONPATH=str(REPO))
        base = [sys.executable, "-m", "controller.cli", "plan", "--dir", str(EXAMPLE), "--env-file", str(ENV_FILE)]
        base += ["--output", "json"]

        def whole(*extra: str) -> None:
            r = subprocess.run([*base, *extra], env=env, capture_output=True, text=True, check=False)
            assert r.returncode == 0, r.stdout + r.stderr

        plain = timed(whole, max(5, args.repeat // 2))
        probed = timed(lambda: whole("--probe"), max(5, args.repeat // 2))
        print(f"whole `dbstate plan`                      {fmt(plain)}")
        print(f"whole `dbstate plan --probe`              {fmt(probed)}")
        pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
