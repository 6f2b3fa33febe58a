"""Backup, restore and a major upgrade of one PostgreSQL database of --mib MiB through dbstate, against the database's
own tools doing the same work in the same container, in the same run:

- backup: `dbstate backup`'s path (pg_dumpall streamed out of the container, rows counted, compressed, digested,
  checked) against `pg_dump -Fc` to a file inside the container (its own compression), and `pg_dumpall > /dev/null`;
- restore: the replay of that backup (psql) against `pg_restore` of the -Fc file into a new database, and the whole
  `dbstate restore` (a backup of what is there first, drop, replay, rows checked);
- upgrade: `dbstate apply` of 15 -> 17 with policy.upgrade: dump-restore, and what a client writing a row every 0.1 s
  through the network sees: the longest gap between two writes the server committed, and how many committed writes
  are missing afterwards (there must be none).

    .venv/bin/python -m bench.backup [--mib 1024]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
import docker.models.containers
import psycopg

from bench.common import ENV, bench_engine, controller_env
from controller.adapters import desired
from controller.adapters.backups import BackupDir
from controller.adapters.docker import DockerRuntime
from controller.adapters.shell import DockerShell
from controller.core import databases
from controller.engine import backing

PW = ENV["BENCH_PASSWORD"]
STATE = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: bk-bench}
---
apiVersion: dbstate.io/v1
kind: Volume
metadata: {name: VOLUME}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: pgb}
spec:
  engine: postgres
  version: "MAJOR"
  image: dbstate-local/postgres:MAJOR
  containerName: pgb-db
  networks: [{name: bk-bench}]
  volumes: [{source: VOLUME, target: /var/lib/postgresql/data}]
  env: {POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${BENCH_PASSWORD}"}
  auth: {method: scram-sha-256, user: app, password: "${BENCH_PASSWORD}", database: app}
  policy: {upgrade: dump-restore}
"""
FILL = (  # ~1 KiB of hex digits a row, no two alike: compresses about as well as real text does
    "INSERT INTO filler SELECT g, array_to_string(ARRAY(SELECT md5((g * 31 + i)::text) "
    "FROM generate_series(1, 30) i), ' ') FROM generate_series(1, %d) g"
)


def state(major: str, volume: str) -> str:
    return STATE.replace("MAJOR", major).replace("VOLUME", volume)


def psql(c: docker.models.containers.Container, sql: str, db: str = "app") -> str:
    code, out = c.exec_run(["psql", "-U", "app", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], user="postgres")
    text = out.decode() if isinstance(out, bytes) else ""
    if code != 0:
        raise RuntimeError(text)
    return text.strip()


def sh(c: docker.models.containers.Container, script: str) -> float:
    t0 = time.perf_counter()
    code, out = c.exec_run(["sh", "-c", script], user="postgres", environment={"PGUSER": "app"})
    if code != 0:
        raise RuntimeError(out.decode()[-500:] if isinstance(out, bytes) else script)
    return time.perf_counter() - t0


def apply(root: Path, env: dict[str, str]) -> float:
    return timed_dbstate(env, "apply", "--yes", "--dir", str(root))


def timed_dbstate(env: dict[str, str], *args: str) -> float:
    """The seconds a `dbstate` command took; its output when it fails."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if r.returncode != 0:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    return time.perf_counter() - t0


class Client:
    """A client of the database through the network that writes a row every 0.1 s (a new connection each time, as an
    application reconnecting would): when each write was committed, and which, to measure the longest gap between
    two committed writes and to check that every committed write is still there after the upgrade."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.committed: list[tuple[float, int]] = []  # (monotonic time, row) of each write the server committed
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.write, daemon=True)

    def ip(self) -> str:
        nets = self.client.containers.get("pgb-db").attrs["NetworkSettings"]["Networks"]
        return str(nets["bk-bench"]["IPAddress"])  # a KeyError while the server is on no network of the client's

    def write(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                with psycopg.connect(host=self.ip(), user="app", password=PW, dbname="app", connect_timeout=1) as conn:
                    conn.execute("INSERT INTO writes VALUES (%s)", (n,))  # committed as the block ends
                self.committed.append((time.monotonic(), n))
            except Exception:  # noqa: S110 - a refused write is what is measured
                pass
            self.stop.wait(0.1)

    def longest_gap(self) -> float:
        times = [t for t, _n in self.committed]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def lost(self, stored: set[int]) -> int:
        return sum(1 for _t, n in self.committed if n not in stored)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="size of the table to back up (default 1024)")
    args = ap.parse_args()
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory(prefix="dbstate-bench-backup-") as tmp:
        root, env = controller_env(eng.host, tmp, state("15", "pgb-data"))
        apply(root, env)
        c = client.containers.get("pgb-db")
        deadline = time.monotonic() + 120
        while c.exec_run(["pg_isready", "-h", "127.0.0.1"])[0] != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not start")
            time.sleep(0.5)
        rows = args.mib * 1024
        t0 = time.perf_counter()
        psql(c, "CREATE TABLE filler (id bigint PRIMARY KEY, note text)")
        psql(c, FILL % rows)
        size = psql(c, "SELECT pg_size_pretty(pg_database_size('app'))")
        print(f"PostgreSQL 15, table of {rows} rows, database {size} (filled in {time.perf_counter() - t0:.0f} s)")

        floor_dumpall = sh(c, "pg_dumpall > /dev/null")
        floor_dump = sh(c, "pg_dump -Fc -d app -f /tmp/floor.dump")
        floor_restore = sh(c, "createdb restored && pg_restore -d restored /tmp/floor.dump")
        sh(c, "dropdb restored && rm /tmp/floor.dump")
        inst = desired.load(root, environ=ENV).state.instances[0]
        store = BackupDir(Path(tmp) / "backups")
        runtime = DockerRuntime(eng.host)
        try:
            shell = DockerShell(runtime)
            server = backing.Server(inst, "pgb-db", "dbstate-local/postgres:15")
            t0 = time.perf_counter()
            m = backing.take(server, shell, store, revision=None, reason="bench", progress=lambda _m: None)
            ours_backup = time.perf_counter() - t0
            psql(c, "DROP TABLE filler")
            t0 = time.perf_counter()
            backing.load(
                "pgb-db", inst.spec.engine, databases.of(inst.spec.engine).login(inst), m, store, shell, lambda _m: None
            )
            ours_load = time.perf_counter() - t0
            t0 = time.perf_counter()
            backing.restore(server, m, shell, store, runtime, revision=None, progress=lambda _m: None)
            ours_restore = time.perf_counter() - t0
        finally:
            runtime.close()
        assert psql(c, "SELECT count(*) FROM filler") == str(rows)

        (root / "state.yaml").write_text(state("17", "pgb-data-v17"))
        psql(c, "CREATE TABLE writes (n int)")
        writer = Client(client)
        writer.thread.start()
        time.sleep(1)
        upgrade = apply(root, env)
        time.sleep(2)
        writer.stop.set()
        writer.thread.join()
        c = client.containers.get("pgb-db")
        assert psql(c, "SHOW server_version_num").startswith("17") and psql(c, "SELECT count(*) FROM filler") == str(
            rows
        )
        stored = {int(n) for n in psql(c, "SELECT n FROM writes").split()}

        print(f"dump {m.raw_bytes / 1048576:.0f} MiB, stored {m.size_bytes / 1048576:.0f} MiB (gzip level 3)\n")
        rows_out = [
            ("backup", None, None),
            ("floor: pg_dump -Fc to a file in the container", floor_dump, floor_dump),
            ("       pg_dumpall > /dev/null (no compression)", floor_dumpall, floor_dump),
            ("dbstate backup (stream, count rows, gzip, sha256, check)", ours_backup, floor_dump),
            ("restore", None, None),
            ("floor: pg_restore of the -Fc file into a new database", floor_restore, floor_restore),
            ("dbstate replay of its backup (psql)", ours_load, floor_restore),
            ("dbstate restore (backup first, drop, replay, check rows)", ours_restore, floor_restore),
            ("backup + restore", None, None),
            ("floor: pg_dump -Fc, then pg_restore", floor_dump + floor_restore, floor_dump + floor_restore),
            ("dbstate backup, then its replay", ours_backup + ours_load, floor_dump + floor_restore),
            ("upgrade 15 -> 17 (dump-restore)", None, None),
            ("dbstate apply, whole", upgrade, None),
            ("longest gap between two writes a client saw committed", writer.longest_gap(), None),
        ]
        for label, seconds, floor in rows_out:
            if seconds is None:
                print(f"\n{label:<60} {'seconds':>8}  {'x floor':>7}")
            elif floor is None:
                print(f"{label:<60} {seconds:8.1f}")
            else:
                print(f"{label:<60} {seconds:8.1f}  {seconds / floor:7.2f}")
        print(f"{'writes the client saw committed / lost after the upgrade':<60} {len(writer.committed):8d}", end="")
        print(f"  {writer.lost(stored)} lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
