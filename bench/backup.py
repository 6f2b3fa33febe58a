"""Backup and restore of one PostgreSQL database of --mib MiB through dbstate, against the database's own tools doing
the same work in the same container, in the same run:

- backup: `dbstate backup` (pg_dumpall streamed out of the container, counted, compressed, digested, checked) against
  `pg_dump -Fc` to a file inside the container (its own compression), and against `pg_dumpall > /dev/null`;
- restore: `dbstate restore` (a backup of what is there first, then drop, replay, row check) against
  `pg_restore` of that -Fc file into a fresh database; and the replay alone (dbstate's `load`) against it.

    .venv/bin/python -m bench.backup [--mib 1024]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.models.containers

from bench.common import bench_engine
from controller.adapters import desired
from controller.adapters.backups import BackupDir
from controller.adapters.docker import DockerRuntime
from controller.adapters.shell import DockerShell
from controller.core import dumps
from controller.engine import backing

PW = "bench-only-password"
INSTANCE = """apiVersion: dbstate.io/v1
kind: Network
metadata: {name: bk-bench}
---
apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: pgb}
spec:
  engine: postgres
  version: "15"
  image: dbstate-local/postgres:15
  containerName: pgb-db
  networks: [{name: bk-bench}]
  env: {POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${BENCH_PASSWORD}"}
  auth: {method: scram-sha-256, user: app, password: "${BENCH_PASSWORD}", database: app}
"""


def psql(c: docker.models.containers.Container, sql: str, db: str = "app") -> str:
    code, out = c.exec_run(["psql", "-U", "app", "-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], user="postgres")
    if code != 0:
        raise RuntimeError(str(out))
    return bytes(out).decode().strip()


def sh(c: docker.models.containers.Container, script: str) -> float:
    t0 = time.perf_counter()
    code, out = c.exec_run(["sh", "-c", script], user="postgres", environment={"PGUSER": "app"})
    if code != 0:
        raise RuntimeError(bytes(out).decode()[-500:])
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="size of the table to back up (default 1024)")
    args = ap.parse_args()
    with bench_engine() as (eng, client), tempfile.TemporaryDirectory(prefix="dbstate-bench-backup-") as tmp:
        host = eng.host
        root = Path(tmp) / "ds"
        root.mkdir()
        (root / "pg.yaml").write_text(INSTANCE)
        state = desired.load(root, environ={"BENCH_PASSWORD": PW}).state
        inst = state.instances[0]
        client.networks.create("bk-bench", labels={"dbstate-test": "1"})
        c = client.containers.run(
            "dbstate-local/postgres:15",
            name="pgb-db",
            detach=True,
            network="bk-bench",
            environment={"POSTGRES_USER": "app", "POSTGRES_DB": "app", "POSTGRES_PASSWORD": PW},
            labels={"dbstate-test": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while c.exec_run(["pg_isready", "-h", "127.0.0.1"])[0] != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("postgres did not start")
                time.sleep(0.5)
            rows = args.mib * 1024  # ~1 KiB a row
            t0 = time.perf_counter()
            psql(c, "CREATE TABLE filler (id bigint PRIMARY KEY, note text)")
            fill = (  # ~1 KiB of hex digits a row, no two alike: compresses about as well as real text does
                "INSERT INTO filler SELECT g, array_to_string(ARRAY(SELECT md5((g * 31 + i)::text) "
                "FROM generate_series(1, 30) i), ' ') FROM generate_series(1, %d) g"
            )
            psql(c, fill % rows)
            size = psql(c, "SELECT pg_size_pretty(pg_database_size('app'))")
            print(f"PostgreSQL 15, table of {rows} rows, database {size} (filled in {time.perf_counter() - t0:.0f} s)")

            floor_dumpall = sh(c, "pg_dumpall > /dev/null")
            floor_dump = sh(c, "pg_dump -Fc -d app -f /tmp/floor.dump")
            store = BackupDir(Path(tmp) / "backups")
            runtime = DockerRuntime(host)
            try:
                shell = DockerShell(runtime)
                server = backing.Server(inst, "pgb-db", "dbstate-local/postgres:15")
                t0 = time.perf_counter()
                m = backing.take(server, shell, store, revision=None, reason="bench", progress=lambda _m: None)
                ours_backup = time.perf_counter() - t0
                who = dumps.login(inst)
                floor_restore = sh(c, "createdb restored && pg_restore -d restored /tmp/floor.dump")
                sh(c, "dropdb restored")
                psql(c, "DROP TABLE filler")
                t0 = time.perf_counter()
                backing.load("pgb-db", inst.spec.engine, who, m, store, shell, lambda _m: None)
                ours_load = time.perf_counter() - t0
                t0 = time.perf_counter()
                backing.restore(server, m, shell, store, runtime, revision=None, progress=lambda _m: None)
                ours_restore = time.perf_counter() - t0
            finally:
                runtime.close()
            assert psql(c, "SELECT count(*) FROM filler") == str(rows)
            mib = m.raw_bytes / 1048576
            print(f"dump {mib:.0f} MiB, stored {m.size_bytes / 1048576:.0f} MiB (gzip level 3)\n")
            print(f"{'backup':<58} {'seconds':>8}  {'x floor':>7}")
            print(f"{'floor: pg_dump -Fc to a file in the container':<58} {floor_dump:8.1f}  {1.0:7.2f}")
            print(f"{'       pg_dumpall > /dev/null':<58} {floor_dumpall:8.1f}  {floor_dumpall / floor_dump:7.2f}")
            print(
                f"{'dbstate backup (stream, count, gzip, sha256, check)':<58} {ours_backup:8.1f}  "
                f"{ours_backup / floor_dump:7.2f}"
            )
            print(f"\n{'restore':<58} {'seconds':>8}  {'x floor':>7}")
            print(f"{'floor: pg_restore of the -Fc file into a new database':<58} {floor_restore:8.1f}  {1.0:7.2f}")
            print(
                f"{'dbstate load (replay of the backup, psql)':<58} {ours_load:8.1f}  {ours_load / floor_restore:7.2f}"
            )
            print(
                f"{'dbstate restore (backup first, drop, replay, check rows)':<58} {ours_restore:8.1f}  "
                f"{ours_restore / floor_restore:7.2f}"
            )
        finally:
            c.remove(force=True, v=True)
            client.networks.get("bk-bench").remove()
            shutil.rmtree(Path(tmp) / "backups", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
