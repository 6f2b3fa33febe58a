"""A PostgreSQL major upgrade 15 -> 17 of a pgbench database of about --mib MiB through `dbstate apply`, once per
method in the same run: policy.upgrade: dump-restore, pg-upgrade with --copy, and with --link. For each, what a client
writing a row every 0.1 s through the network sees: the longest gap between two writes the server committed, and how
many committed writes are missing afterwards (there must be none). The floor for --copy is the time to copy the data
directory (`cp -a` from volume to volume in a helper, measured on the same data); for --link, the issue's 5 s. After
--copy, the way back: `dbstate rollback` (the declaration reverted), its whole time and the client's longest gap.

    .venv/bin/python -m bench.upgrade [--mib 1024] [--methods dump-restore copy link] [--repeat 3] [--trace]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker

from bench.backup import Client, apply, psql, timed_dbstate
from bench.backup import state as backup_state
from bench.common import bench_engine, controller_env

POLICIES = {
    "dump-restore": "{upgrade: dump-restore}",
    "copy": "{upgrade: pg-upgrade}",
    "link": "{upgrade: pg-upgrade, upgradeTransfer: link}",
}


def state(method: str, major: str) -> str:
    """bench/backup.py's instance on the old or the new volume (both declared), with the method's policy."""
    old, new = f"pgu-{method}-15", f"pgu-{method}-17"
    text = backup_state(major, old if major == "15" else new)
    other = new if major == "15" else old
    volume = f"apiVersion: dbstate.io/v1\nkind: Volume\nmetadata: {{name: {other}}}\n---\n"
    return volume + text.replace("policy: {upgrade: dump-restore}", f"policy: {POLICIES[method]}")


def ready(client: docker.DockerClient) -> None:
    deadline = time.monotonic() + 120
    while client.containers.get("pgb-db").exec_run(["pg_isready", "-h", "127.0.0.1"])[0] != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("postgres did not start")
        time.sleep(0.3)


def copy_floor(client: docker.DockerClient, volume: str) -> float:
    """`cp -a` of the (stopped) cluster's data directory into a fresh volume: what --copy cannot beat."""
    client.volumes.create("pgu-floor")
    try:
        t0 = time.perf_counter()
        client.containers.run(
            "dbstate-local/postgres:17",
            entrypoint=["sh", "-c", "cp -a /a/. /b/ && sync"],
            volumes={volume: {"bind": "/a", "mode": "ro"}, "pgu-floor": {"bind": "/b", "mode": "rw"}},
            user="0",
            remove=True,
            network_mode="none",
        )
        return time.perf_counter() - t0
    finally:
        client.volumes.get("pgu-floor").remove(force=True)


def timed_apply(root: Path, env: dict[str, str], trace: bool) -> float:
    """`dbstate apply`, its progress lines printed with the seconds since it started when `trace`."""
    if not trace:
        return apply(root, env)
    t0 = time.perf_counter()
    argv = [sys.executable, "-m", "controller.cli", "apply", "--yes", "--dir", str(root)]
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            print(f"  {time.perf_counter() - t0:7.2f}  {line.rstrip()}")
    if proc.returncode != 0:
        raise RuntimeError(f"apply exited {proc.returncode}")
    return time.perf_counter() - t0


def rollback(root: Path, env: dict[str, str]) -> float:
    return timed_dbstate(env, "rollback", "pgb", "--yes", "--discard-writes", "--dir", str(root))


def while_writing(client: docker.DockerClient, action: Callable[[], float]) -> tuple[float, Client]:
    """`action` (its seconds) while a client writes a row every 0.1 s, from 1.5 s before it to 2 s after it."""
    writer = Client(client)
    writer.thread.start()
    time.sleep(1.5)
    took = action()
    time.sleep(2)
    writer.stop.set()
    writer.thread.join()
    return took, writer


def clean(client: docker.DockerClient, method: str) -> None:
    for c in client.containers.list(all=True):
        if c.name.startswith("pgb-db"):
            c.remove(force=True)
    ours = (f"pgu-{method}-15", f"pgu-{method}-17")
    for v in ours:
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(v).remove(force=True)
    for marker in client.volumes.list(filters={"label": "io.dbstate.seen"}):  # a next run starts on new volumes
        if marker.attrs["Labels"].get("io.dbstate.seen") in ours:
            marker.remove(force=True)


def one(
    client: docker.DockerClient, host: str, method: str, scale: int, trace: bool
) -> list[tuple[str, float | None, str]]:
    out: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="dbstate-bench-upgrade-") as tmp:
        root, env = controller_env(host, tmp, state(method, "15"))
        apply(root, env)
        ready(client)
        c = client.containers.get("pgb-db")
        t0 = time.perf_counter()
        code, said = c.exec_run(["pgbench", "-i", "-q", "-s", str(scale), "-U", "app", "app"], user="postgres")
        if code != 0:
            raise RuntimeError(said.decode()[-500:])
        size = psql(c, "SELECT pg_size_pretty(pg_database_size('app'))")
        accounts = psql(c, "SELECT count(*) FROM pgbench_accounts")
        print(f"{method}: pgbench scale {scale}, database {size} (filled in {time.perf_counter() - t0:.0f} s)")
        psql(c, "CREATE TABLE writes (n int)")
        if method == "copy":
            c.stop(timeout=30)
            out.append(
                ("floor: cp -a of the data directory, volume to volume", copy_floor(client, f"pgu-{method}-15"), "")
            )
            c.start()
            ready(client)
        (root / "state.yaml").write_text(state(method, "17"))
        whole, writer = while_writing(client, lambda: timed_apply(root, env, trace))
        c = client.containers.get("pgb-db")
        assert psql(c, "SHOW server_version_num").startswith("17")
        assert psql(c, "SELECT count(*) FROM pgbench_accounts") == accounts
        stored = {int(n) for n in psql(c, "SELECT n FROM writes").split()}
        out += [
            (f"{method}: dbstate apply, whole", whole, ""),
            (f"{method}: longest gap a writing client saw", writer.longest_gap(), ""),
            (f"{method}: writes committed / lost", float(len(writer.committed)), f"{writer.lost(stored)} lost"),
        ]
        if method == "copy":
            (root / "state.yaml").write_text(state(method, "15"))
            took, back = while_writing(client, lambda: rollback(root, env))
            c = client.containers.get("pgb-db")
            assert psql(c, "SHOW server_version_num").startswith("15")
            assert psql(c, "SELECT count(*) FROM pgbench_accounts") == accounts
            out += [
                ("copy: dbstate rollback --discard-writes, whole (a backup first)", took, ""),
                ("copy: longest gap a writing client saw during the rollback", back.longest_gap(), ""),
            ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="about how large the pgbench database is (default 1024)")
    ap.add_argument("--methods", nargs="+", choices=sorted(POLICIES), default=["dump-restore", "copy", "link"])
    ap.add_argument("--trace", action="store_true", help="print each upgrade's steps with their time")
    ap.add_argument("--repeat", type=int, default=1, help="upgrades per method, each on fresh data (default 1)")
    args = ap.parse_args()
    scale = max(1, round(args.mib / 15))  # pgbench: about 15 MiB a scale unit
    rows: list[tuple[str, float | None, str]] = []
    with bench_engine() as (eng, client):
        for method in args.methods:
            gaps = []
            for run in range(1, args.repeat + 1):
                clean(client, method)
                try:
                    these = one(client, eng.host, method, scale, args.trace)
                finally:
                    clean(client, method)
                gaps += [s for label, s, _ in these if label == f"{method}: longest gap a writing client saw"]
                rows += [(f"{label} (run {run})" if args.repeat > 1 else label, s, n) for label, s, n in these]
            if args.repeat > 1:
                rows.append((f"{method}: longest gap, median of {len(gaps)} runs", statistics.median(gaps), ""))
                rows.append((f"{method}: longest gap, worst of {len(gaps)} runs", max(gaps), ""))
    print(f"\n{'PostgreSQL 15 -> 17, ' + str(args.mib) + ' MiB':<66} {'seconds':>8}")
    for label, seconds, note in rows:
        value = f"{seconds:8.1f}" if seconds is not None and "committed" not in label else f"{seconds:8.0f}"
        print(f"{label:<66} {value}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
