"""Benchmark of a cold `dbstate apply` of N instances against the floor measured in the same run: docker-py creating
the same network, volumes and containers (same image, env, labels, alias, mount) and starting them on a thread pool
of the same width.

    .venv/bin/python -m bench.apply [--instances 50] [--rounds 3] [--parallel 4]

Each round runs the floor and dbstate alternately on a clean engine (everything removed in between), so that both
see the same engine state. dbstate is timed twice: in-process (Reconciler.plan + Reconciler.apply: load, observe, diff,
apply) and as a whole `dbstate apply --yes` process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

from bench.common import ENV, bench_engine, dbstate, realise, write_state
from controller.adapters import desired
from controller.core import spec
from controller.core.options import PassOptions, Target
from controller.wiring import engines
from devtools import engine as devengine

REPO = Path(__file__).resolve().parent.parent


def floor(client: docker.DockerClient, state: spec.DesiredState, parallel: int) -> float:
    t0 = time.perf_counter()
    realise(client, state, parallel)
    return time.perf_counter() - t0


def in_process(host: str, root: Path, state_db: Path, parallel: int) -> float:
    os.environ.update(ENV)
    t0 = time.perf_counter()
    with engines.reconciler(Target(root, None, host, state_db), PassOptions("bench", parallel=parallel)) as wired:
        result = wired.reconciler.plan()
        outcomes = wired.reconciler.apply(result)
    elapsed = time.perf_counter() - t0
    assert all(o.status == "ok" for o in outcomes), [o.message for o in outcomes if o.status != "ok"][:3]
    return elapsed


def whole(host: str, root: Path, state_db: Path, parallel: int) -> float:
    env = {**os.environ, **ENV, "DOCKER_HOST": host, "DBSTATE_STATE": str(state_db), "PYTHONPATH": str(REPO)}
    return dbstate(env, "apply", "--dir", str(root), "--yes", "--parallel", str(parallel))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parallel", type=int, default=4)
    args = p.parse_args()
    with bench_engine() as (eng, client):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "desired"
            write_state(root, args.instances)
            loaded = desired.load(root, environ=ENV)
            assert not loaded.errors
            results: dict[str, list[float]] = {"floor": [], "in-process": [], "whole": []}
            for r in range(args.rounds):
                for label in ("floor", "in-process", "whole"):
                    devengine.cleanup(client, labels=("io.dbstate.managed",))
                    db = Path(tmp) / f"state-{r}-{label}.db"
                    if label == "floor":
                        t = floor(client, loaded.state, args.parallel)
                    elif label == "in-process":
                        t = in_process(eng.host, root, db, args.parallel)
                    else:
                        t = whole(eng.host, root, db, args.parallel)
                    results[label].append(t)
                    print(f"round {r + 1}: {label:<10} {t:6.2f}s")
        f = statistics.median(results["floor"])
        print(f"\ncold apply of {args.instances} instances, parallel {args.parallel}, {os.cpu_count()} cores (medians)")
        print(f"  floor (docker-py, fewest calls)   {f:6.2f}s")
        for label in ("in-process", "whole"):
            m = statistics.median(results[label])
            print(f"  dbstate apply, {label:<18} {m:6.2f}s   {m / f:4.2f}x floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
