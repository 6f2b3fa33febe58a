"""Benchmark of several Docker engines (`kind: Host`) under one `dbstate run`, against one controller per engine, in
the same run: pass duration, repair latency and controller memory with 1, 2 and 4 private engines of N instances.

    .venv/bin/python -m bench.engines [--instances 50] [--engines 1,2,4] [--trials 10] [--watch 15]

  pass       the duration of each engine's steady resync passes (the `pass` log lines' duration_ms), p50 and p95
  repair     one container killed on every engine at once -> each running again (restartPolicy "no": only the
             controller restarts it), p50 and p95 over every engine and trial
  rss        the controllers' resident memory after the trials (the sum, for one controller per engine)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from bench.common import ENV
from bench.loop import pct, proc_stats, wait_running

REPO = Path(__file__).resolve().parent.parent
RUN = ("--log-format", "json", "--resync", "5")
SLEEP = "[sleep, infinity]"  # containers, not servers: what is measured is the controller


def state_of(engine: int, host: str, instances: int) -> str:
    """Engine `e<engine>`'s Host document and its instances (names unique across engines)."""
    docs = [
        f"apiVersion: dbstate.io/v1\nkind: Host\nmetadata: {{name: e{engine}}}\nspec: {{endpoint: '{host}'}}\n",
        f"apiVersion: dbstate.io/v1\nkind: Network\nmetadata: {{name: bench-net-{engine}}}\n"
        f"spec: {{host: e{engine}}}\n",
    ]
    for i in range(instances):
        docs.append(f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: kv{engine}-{i}}}
spec:
  host: e{engine}
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: kv{engine}-{i}-redis-1
  networks: [{{name: bench-net-{engine}, aliases: [kv{engine}-{i}]}}]
  env: {{REDIS_PASSWORD: "${{BENCH_PASSWORD}}"}}
  command: {SLEEP}
  restartPolicy: "no"
  auth: {{method: password, password: "${{BENCH_PASSWORD}}"}}
""")
    return "---\n".join(docs)


def write_dir(root: Path, engines: list[tuple[int, str]], instances: int) -> Path:
    root.mkdir(parents=True)
    for n, host in engines:
        (root / f"e{n}.yaml").write_text(state_of(n, host, instances))
    return root


class Controller:
    def __init__(self, directory: Path, tmp: Path, tag: str) -> None:
        self.log = tmp / f"{tag}.log"
        env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), "DBSTATE_STATE": str(tmp / f"{tag}.db")}
        self.out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--dir", str(directory), "--listen", "", *RUN],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.out,
        )

    def passes(self) -> list[dict[str, object]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("msg") == "pass":
                out.append(rec)
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.out.close()


def measure(controllers: list[Controller], clients: list[docker.DockerClient], args: argparse.Namespace) -> dict:
    """Wait for every engine's first pass, watch the steady passes, then kill one container per engine at once."""
    engines = len(clients)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = {(i, p.get("host")) for i, c in enumerate(controllers) for p in c.passes()}  # host: when several
        if len(seen) >= engines:
            break
        time.sleep(0.5)
    else:
        raise TimeoutError("not every engine had a pass within 180 s")
    time.sleep(args.watch)
    steady = []
    for c in controllers:
        for p in c.passes():
            if p.get("changes") == 0 and str(p.get("trigger")) == "resync":
                steady.append(float(str(p["duration_ms"])) / 1000)
    repairs: list[float] = []
    with ThreadPoolExecutor(engines) as pool:
        for trial in range(args.trials):
            names = [f"kv{n}-{trial % args.instances}-redis-1" for n in range(engines)]
            for client, name in zip(clients, names, strict=True):
                wait_running(client.api, name)
            time.sleep(0.5)
            t0 = time.perf_counter()
            list(pool.map(lambda cn: cn[0].api.kill(cn[1]), zip(clients, names, strict=True)))
            done = pool.map(lambda cn: wait_running(cn[0].api, cn[1], 60), zip(clients, names, strict=True))
            repairs += [t - t0 for t in done]
    rss = sum(proc_stats(c.proc.pid)[1] for c in controllers)
    return {"steady": steady, "repairs": repairs, "rss": rss}


def line(label: str, r: dict) -> str:
    steady, repairs = r["steady"] or [0.0], r["repairs"]
    return (
        f"  {label:<34} pass p50 {statistics.median(steady) * 1000:6.0f} ms  p95 {pct(steady, 0.95) * 1000:6.0f} ms"
        f"  ({len(r['steady'])} passes)   repair p50 {statistics.median(repairs):.3f} s  p95 {pct(repairs, 0.95):.3f} s"
        f"   RSS {r['rss']:.0f} MB"
    )


def main() -> int:
    from devtools import engine as devengine

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--engines", default="1,2,4")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--watch", type=float, default=15.0, help="seconds of steady passes to record (default: 15)")
    args = p.parse_args()
    counts = sorted({int(x) for x in args.engines.split(",")})
    names = ["bench", "bench2", "bench3", "bench4"][: max(counts)]
    if max(counts) > len(names):
        raise SystemExit("at most 4 engines")
    engines = [devengine.start(n) for n in names]
    clients = [e.client(timeout=600) for e in engines]
    try:
        refs = devengine.ensure_images(clients[0], log=lambda m: print(m, file=sys.stderr))
        for c in clients[1:]:
            devengine.copy_images(clients[0], c, [refs["redis"]])
        for c in clients:
            devengine.cleanup(c)
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            every = write_dir(tmp / "all", [(n, e.host) for n, e in enumerate(engines)], args.instances)
            env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), "DBSTATE_STATE": str(tmp / "apply.db")}
            t0 = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-m", "controller.cli", "apply", "--dir", str(every), "--yes"],
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                said = [ln for ln in r.stdout.splitlines() if not ln.startswith(("  ok", "    +", "      image"))]
                raise SystemExit("the cold apply failed:\n" + "\n".join(said[-60:]) + "\n" + r.stderr[-3000:])
            cold = time.perf_counter() - t0
            print(
                f"\n{len(engines)} engines x {args.instances} instances, {args.trials} trials, {os.cpu_count()} cores; "
                f"cold `dbstate apply` of all {len(engines) * args.instances}: {cold:.1f} s"
            )
            for n in counts:
                one = write_dir(tmp / f"one-{n}", [(i, engines[i].host) for i in range(n)], args.instances)
                c = Controller(one, tmp, f"one-{n}")
                try:
                    shared = measure([c], clients[:n], args)
                finally:
                    c.stop()
                apart = []
                for i in range(n):
                    d = write_dir(tmp / f"apart-{n}-{i}", [(i, engines[i].host)], args.instances)
                    apart.append(Controller(d, tmp, f"apart-{n}-{i}"))
                try:
                    each = measure(apart, clients[:n], args)
                finally:
                    for a in apart:
                        a.stop()
                print(f"{n} engine{'s' * (n > 1)} x {args.instances} instances")
                print(line("one dbstate run for all", shared))
                print(line(f"one dbstate run per engine ({n})", each))
    finally:
        for c in clients:
            devengine.cleanup(c)
            c.close()
        for e in engines:
            e.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
