"""Benchmark of `dbstate run` on a private engine managing N instances (restartPolicy "no", so only a repairer brings
a killed container back), against the floor measured in the same run.

    .venv/bin/python -m bench.loop [--instances 50] [--trials 20] [--idle 60]

  repair         `docker kill` -> the container running again, with the controller running (p50, p95)
  floor          the same with a bare event-driven restarter instead: a thread that calls start on every die event
  commit         `git commit` of a new instance -> its container running
  idle           CPU time and RSS of the controller over --idle seconds with nothing to do (one resync included)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker

from bench.common import ENV, bench_engine, write_state

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"repair_p50": 0.6, "commit_p50": 1.0, "idle_cpu": 1.0, "idle_rss_mb": 100.0}


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=b@b", "-c", "user.name=b", *args], check=True, capture_output=True
    )


def wait_running(api: docker.APIClient, name: str, timeout: float = 30) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if api.inspect_container(name)["State"]["Running"]:
                return time.perf_counter()
        except docker.errors.NotFound:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{name} not running after {timeout}s")


def kill_trials(client: docker.DockerClient, names: list[str], trials: int) -> list[float]:
    api = client.api
    out = []
    for i in range(trials):
        name = names[i % len(names)]
        wait_running(api, name)
        time.sleep(0.3)  # let the previous repair's events settle
        t0 = time.perf_counter()
        api.kill(name)
        out.append(wait_running(api, name) - t0)
    return out


def bare_restarter(host: str, stop: threading.Event) -> None:
    api = docker.APIClient(base_url=host, version="1.41")
    stream = api.events(decode=True, filters={"type": "container", "event": "die"})
    threading.Thread(target=lambda: (stop.wait(), stream.close()), daemon=True).start()
    try:
        for ev in stream:
            with contextlib.suppress(docker.errors.APIError):
                api.start(ev["id"])
    except Exception:  # noqa: S110 - the stream closes on stop
        pass


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, RSS in MB) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument(
        "--probe-interval", default=None, help="passed to `dbstate run` (default: its own default; 0: no probes)"
    )
    args = p.parse_args()
    controller = None
    with bench_engine() as (eng, client):
        env = {**os.environ, **ENV, "DOCKER_HOST": eng.host, "PYTHONPATH": str(REPO)}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                repo = Path(tmp) / "repo"
                write_state(repo / "ds", args.instances, "[sleep, infinity]")
                text = (repo / "ds" / "bench.yaml").read_text()
                (repo / "ds" / "bench.yaml").write_text(text.replace("  auth:", '  restartPolicy: "no"\n  auth:'))
                git(repo, "init", "-q")
                git(repo, "add", "-A")
                git(repo, "commit", "-qm", "bench")
                env["DBSTATE_STATE"] = str(Path(tmp) / "state.db")
                subprocess.run(
                    [sys.executable, "-m", "controller.cli", "apply", "--dir", str(repo / "ds"), "--yes"],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                names = [f"kv-{i}-redis-1" for i in range(args.instances)]

                stop = threading.Event()
                t = threading.Thread(target=bare_restarter, args=(eng.host, stop), daemon=True)
                t.start()
                time.sleep(0.5)
                floor = kill_trials(client, names, args.trials)
                stop.set()
                t.join(5)

                log = open(Path(tmp) / "run.log", "w")  # noqa: SIM115 - closed below
                controller = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "controller.cli",
                        "run",
                        "--dir",
                        str(repo / "ds"),
                        "--listen",
                        "",
                        "--resync",
                        "60",
                        *(["--probe-interval", args.probe_interval] if args.probe_interval is not None else []),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                deadline = time.monotonic() + 60
                while "msg=pass " not in (Path(tmp) / "run.log").read_text() and time.monotonic() < deadline:
                    time.sleep(0.2)
                repair = kill_trials(client, names, args.trials)

                commit = []
                for i in range(min(10, args.trials)):
                    name = f"kv-new-{i}"
                    (repo / "ds" / f"{name}.yaml").write_text(
                        text.split("---\n")[2].replace("kv-0", name).replace("bench-vol-0", "bench-vol-0")
                    )
                    git(repo, "add", "-A")
                    t0 = time.perf_counter()
                    git(repo, "commit", "-qm", f"add {name}")
                    commit.append(wait_running(client.api, f"{name}-redis-1") - t0)

                time.sleep(2)
                cpu0, _ = proc_stats(controller.pid)
                t0 = time.monotonic()
                time.sleep(args.idle)
                cpu1, rss = proc_stats(controller.pid)
                idle_cpu = 100 * (cpu1 - cpu0) / (time.monotonic() - t0)

                controller.send_signal(signal.SIGTERM)
                controller.wait(timeout=30)
                log.close()
                controller = None

            print(f"\n{args.instances} instances, {args.trials} trials, {os.cpu_count()} cores")
            print(
                f"  floor: bare event-driven restart   p50 {statistics.median(floor):.3f}s  p95 {pct(floor, 0.95):.3f}s"
            )
            print(
                f"  dbstate run: kill -> running       p50 {statistics.median(repair):.3f}s"
                f"  p95 {pct(repair, 0.95):.3f}s"
                f"   ({statistics.median(repair) / statistics.median(floor):.1f}x floor; target p50 <= "
                f"{TARGETS['repair_p50']}s)"
            )
            print(
                f"  dbstate run: commit -> running     p50 {statistics.median(commit):.3f}s"
                f"  p95 {pct(commit, 0.95):.3f}s"
                f"   (target p50 < {TARGETS['commit_p50']}s)"
            )
            print(
                f"  idle over {args.idle:.0f}s: CPU {idle_cpu:.2f}% of one core (target < {TARGETS['idle_cpu']}%), "
                f"RSS {rss:.0f} MB (target < {TARGETS['idle_rss_mb']:.0f} MB)"
            )
        finally:
            if controller is not None:
                controller.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
