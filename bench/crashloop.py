"""Passes per minute of `dbstate run` while one database crash-loops (it exits a second after each start, and only
dbstate restarts it), next to the same engine with nothing wrong: what drives the passes, and the controller's CPU.

    .venv/bin/python -m bench.crashloop [--seconds 300]

Printed: passes by trigger (resync, the crash-looping container's retries, events), passes per minute, restarts of
the crash-looping container, CPU of the controller. Without backoff every die would be a pass and a restart (~one a
second); with it, restarts come at 1, 2, 4, 8 ... s and the other passes only from resync.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import bench_engine, controller_env
from bench.loop import proc_stats

STATE = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: crash-net}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: steady}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: steady-redis-1
  networks: [{name: crash-net}]
  env: {REDIS_PASSWORD: "${BENCH_PASSWORD}"}
  command: [sleep, infinity]
  restartPolicy: "no"
  auth: {method: password, password: "${BENCH_PASSWORD}"}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: crashing}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: crashing-redis-1
  networks: [{name: crash-net}]
  env: {REDIS_PASSWORD: "${BENCH_PASSWORD}"}
  command: [sh, -c, "sleep 1; exit 1"]
  restartPolicy: "no"
  auth: {method: password, password: "${BENCH_PASSWORD}"}
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=300.0)
    args = p.parse_args()
    with bench_engine() as (eng, _client), tempfile.TemporaryDirectory() as tmp:
        root, env = controller_env(eng.host, tmp, STATE)
        log_path = Path(tmp) / "run.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controller",
                    "run",
                    "--dir",
                    str(root),
                    "--log-format",
                    "json",
                    "--listen",
                    "",
                    "--probe-interval",
                    "0",
                    "--resync",
                    "60",
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
            t0 = time.monotonic()
            cpu0 = proc_stats(proc.pid)[0]
            time.sleep(args.seconds)
            cpu = proc_stats(proc.pid)[0] - cpu0
            elapsed = time.monotonic() - t0
            proc.terminate()
            proc.wait(timeout=30)
        passes = []
        for line in log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg") == "pass":
                passes.append(record)
        triggers: collections.Counter[str] = collections.Counter()
        for r in passes:
            for t in str(r.get("trigger", "")).split(","):
                triggers[" ".join(t.split()[:3]) if t.startswith("docker") else t] += 1
        starts = sum(int(r.get("changes", 0)) for r in passes)
        print(f"{elapsed:.0f} s of dbstate run, one of two instances crash-looping (exits 1 s after each start)")
        print(f"  passes: {len(passes)} ({len(passes) / elapsed * 60:.1f} a minute); changes applied: {starts}")
        for t, n in triggers.most_common():
            print(f"    trigger {t:<32} {n}")
        print(f"  controller CPU: {cpu:.2f} s ({cpu / elapsed * 100:.2f}% of a core)")
        print(f"  without backoff: one pass and one restart per die, about {elapsed / 1.3:.0f} of each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
