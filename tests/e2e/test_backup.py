"""Backups, restores and upgrades against real servers on the real engine, with marker rows written first and read
after: each engine backed up, verified in a throw-away server and restored; no password in any process's command line
while the dumps run; a damaged backup refused; a recreate backed up first (and not run without its backup); a major
upgrade 15 -> 17 by dump and restore (refused before any downtime when the new image lacks an extension), its
rollback when the restore fails, and the same under clients that keep writing."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.helpers import dbstate, network, volume, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PW = "bk-" + SECRET
ENV = {"BK_PASSWORD": PW}


def pg(image: str = "dbstate-local/postgres:15", version: str = "15", vol: str = "pg-data", policy: str = "") -> str:
    return f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: pg, labels: {{dbstate-test: "1"}}}}
spec:
  engine: postgres
  version: "{version}"
  image: {image}
  containerName: pgbk-db
  networks: [{{name: bk-net, aliases: [pg]}}]
  volumes: [{{source: {vol}, target: /var/lib/postgresql/data}}]
  env: {{POSTGRES_USER: app, POSTGRES_DB: app, POSTGRES_PASSWORD: "${{BK_PASSWORD}}"}}
  auth: {{method: scram-sha-256, user: app, password: "${{BK_PASSWORD}}", database: app}}
{policy}"""


MARIADB = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: my, labels: {dbstate-test: "1"}}
spec:
  engine: mariadb
  version: "10.11"
  image: dbstate-local/mariadb:10.11
  containerName: mybk-db
  networks: [{name: bk-net, aliases: [my]}]
  volumes: [{source: my-data, target: /var/lib/mysql}]
  env: {MARIADB_ROOT_PASSWORD: "${BK_PASSWORD}", MARIADB_DATABASE: app}
  auth: {method: password, user: root, password: "${BK_PASSWORD}", database: app}
"""

REDIS = """apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {name: kv, labels: {dbstate-test: "1"}}
spec:
  engine: redis
  version: "7"
  image: dbstate-local/redis:7.0
  containerName: kvbk-db
  networks: [{name: bk-net, aliases: [kv]}]
  volumes: [{source: kv-data, target: /data}]
  env: {REDIS_PASSWORD: "${BK_PASSWORD}"}
  command: ["sh", "-c", "exec redis-server --requirepass \\"$$REDIS_PASSWORD\\""]
  auth: {method: password, password: "${BK_PASSWORD}"}
"""


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    vols = "---\n".join(
        volume(v) for v in ("pg-data", "my-data", "kv-data", "kv-aof-data", "pg-data-v17", "pg-restored", "my-data-v11")
    )
    return write_tree(tmp_path / "ds", {"net.yaml": network("bk-net"), "vols.yaml": vols, **files})


def run(*args: str, host: str, state: Path) -> Any:
    return dbstate(*args, host=host, state=state, env=ENV, secrets=(PW,))


def converge(root: Path, host: str, state: Path) -> None:
    r = run("apply", "--yes", "--dir", str(root), host=host, state=state)
    assert r.code == 0, r.stdout + r.stderr


def sql(client: docker.DockerClient, container: str, query: str, database: str = "app") -> str:
    """A query through the server's own client, as a DBA types it (trust on the local socket)."""
    c = client.containers.get(container)
    if container == "mybk-db":
        code, out = c.exec_run(
            ["mariadb", "-uroot", "-N", "-B", "-D", database, "-e", query], environment={"MYSQL_PWD": PW}
        )
    else:
        code, out = c.exec_run(["psql", "-U", "app", "-d", database, "-At", "-c", query], user="postgres")
    assert code == 0, out.decode()
    return str(out.decode().strip())


def redis_cli(client: docker.DockerClient, *command: str) -> str:
    code, out = client.containers.get("kvbk-db").exec_run(
        ["redis-cli", "--no-auth-warning", *command], environment={"REDISCLI_AUTH": PW}
    )
    assert code == 0, out.decode()
    return str(out.decode().strip())


def ready(client: docker.DockerClient, container: str) -> bool:
    c = client.containers.get(container)
    if container == "kvbk-db":
        return b"PONG" in c.exec_run(["redis-cli", "--no-auth-warning", "ping"], environment={"REDISCLI_AUTH": PW})[1]
    if container == "mybk-db":
        return c.exec_run(["mariadb", "-uroot", "-h127.0.0.1", "-e", "SELECT 1"], environment={"MYSQL_PWD": PW})[0] == 0
    return c.exec_run(["pg_isready", "-h", "127.0.0.1"])[0] == 0


def backups(host: str, state: Path) -> list[dict[str, Any]]:
    r = run("backups", "--output", "json", host=host, state=state)
    assert r.code == 0, r.stderr
    return list(json.loads(r.stdout))


def test_a_redis_with_appendonly_yes_is_restored_and_keeps_it_across_a_restart(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    """The seed's Redis (and most real ones) run with `appendonly yes`, where Redis loads its AOF and ignores the RDB:
    restore used to refuse it. Now the RDB is loaded by a helper with AOF off, AOF turned on (rewritten from it), and
    the server starts on it: the marker keys are back, the keys written after the backup are gone, AOF is still on,
    and a restart (which loads the AOF) keeps them."""
    state = tmp_path / "state.db"
    aof = REDIS.replace('--requirepass \\"$$REDIS_PASSWORD\\"', '--requirepass \\"$$REDIS_PASSWORD\\" --appendonly yes')
    assert aof != REDIS
    aof = aof.replace("{source: kv-data,", "{source: kv-aof-data,")  # its own volume: never another test's data
    root = tree(tmp_path, {"kv.yaml": aof})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "kvbk-db"), timeout=60, interval=0.5)
    assert redis_cli(docker_client, "CONFIG", "GET", "appendonly").split() == ["appendonly", "yes"]
    redis_cli(docker_client, "MSET", *[f"marker:{i}" if j == 0 else f"kv row {i}" for i in range(50) for j in (0, 1)])
    assert run("backup", "kv", "--dir", str(root), host=engine_host, state=state).code == 0
    [taken] = backups(engine_host, state)
    redis_cli(docker_client, "FLUSHALL")
    redis_cli(docker_client, "SET", "after:backup", "gone after the restore")
    r = run("restore", "kv", "--from", taken["id"], "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stderr
    for again in (False, True):
        if again:
            docker_client.containers.get("kvbk-db").restart(timeout=5)
        wait_for(lambda: ready(docker_client, "kvbk-db"), timeout=60, interval=0.5)
        assert redis_cli(docker_client, "DBSIZE") == "50"
        assert redis_cli(docker_client, "GET", "marker:49") == "kv row 49"
        assert redis_cli(docker_client, "EXISTS", "after:backup") == "0"
        assert redis_cli(docker_client, "CONFIG", "GET", "appendonly").split() == ["appendonly", "yes"]
    assert docker_client.containers.list(all=True, filters={"label": "io.dbstate.helper"}) == []


def forge(where: Path, original: dict[str, Any], ident: str, body: bytes, key: Path | None = None) -> None:
    """A backup made by hand from `original`'s manifest: its sha256 and sizes made to match `body`, and signed with
    `key` when given (by the manifest's canonical form: every field but the signature, sorted, compact)."""
    forged = dict(original, id=ident, file=f"{ident}.sql.gz")
    packed = gzip.compress(body)
    forged.update(size_bytes=len(packed), raw_bytes=len(body), sha256=hashlib.sha256(packed).hexdigest())
    if key is not None:  # else it keeps the original's signature, which no longer matches
        forged.pop("signature", None)
        canonical = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
        forged["signature"] = hmac.new(bytes.fromhex(key.read_text().strip()), canonical, hashlib.sha256).hexdigest()
    (where / f"{ident}.sql.gz").write_bytes(packed)
    (where / f"{ident}.json").write_text(json.dumps(forged))


def test_a_backup_is_code_so_only_a_signed_one_without_meta_commands_is_replayed(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    """A pg_dumpall file rewritten with `\\! touch /tmp/x` before its first line, its manifest's sha256 and sizes
    recomputed: restore used to run the command in the database's container and say "restored". Now: without the key
    it is not authentic; signed with the key it is still refused for its meta-command before anything changes, and
    so is one hidden mid-line (psql's restricted mode would refuse it during the replay too), by restore and by
    verify-backup alike. The marker rows stay, /tmp/x never appears, and the backup key is outside the backup
    directory, mode 0600."""
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"pg.yaml": pg()})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    sql(docker_client, "pgbk-db", "CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 10) g")
    assert run("backup", "pg", "--dir", str(root), host=engine_host, state=state).code == 0
    [taken] = backups(engine_host, state)
    key = state.parent / "backup.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and taken["signature"]
    where = state.parent / "backups" / "pg"
    body = gzip.decompress((where / taken["file"]).read_bytes())
    pg_db = docker_client.containers.get("pgbk-db")

    def touched(path: str) -> bool:
        return pg_db.exec_run(["test", "-e", path])[0] == 0

    def restore(ident: str) -> Any:
        return run("restore", "pg", "--from", ident, "--yes", "--dir", str(root), host=engine_host, state=state)

    forge(where, taken, "pg-evil", b"\\! touch /tmp/x\n" + body)
    r = restore("pg-evil")
    assert r.code == 1 and "backup pg-evil is not authentic" in r.stderr, r.stderr
    forge(where, taken, "pg-evil", b"\\! touch /tmp/x\n" + body, key=key)
    for cmd in ("restore", "verify-backup"):
        r = (
            restore("pg-evil")
            if cmd == "restore"
            else run("verify-backup", "pg-evil", "--dir", str(root), host=engine_host, state=state)
        )
        assert r.code == 1 and "holds meta-commands that pg_dumpall never writes (line 1: \\!)" in r.stderr, r.stderr
    assert len(backups(engine_host, state)) == 2  # refused before anything: not even the backup before a restore
    hidden = body.replace(b"\nCREATE ROLE", b"\nSELECT 1; \\! touch /tmp/y\nCREATE ROLE", 1)
    assert hidden != body
    forge(where, taken, "pg-hidden", hidden, key=key)
    for cmd in ("restore", "verify-backup"):  # mid-line: refused by the scan too, before anything changes
        r = (
            restore("pg-hidden")
            if cmd == "restore"
            else run("verify-backup", "pg-hidden", "--dir", str(root), host=engine_host, state=state)
        )
        assert r.code == 1 and "holds meta-commands that pg_dumpall never writes" in r.stderr, r.stderr
        assert "\\!" in r.stderr.split("never writes", 1)[1], r.stderr
    assert not touched("/tmp/x") and not touched("/tmp/y")
    assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker") == "10"
    r = restore(taken["id"])  # the genuine one still restores
    assert r.code == 0, r.stderr
    assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker") == "10"


class CmdlineWatch:
    """Reads every process's command line on the host (a container's processes are the host's too) as fast as it
    can, and inside each container every tenth round, until stopped: what it saw of the dump tools, and any command
    line holding the password."""

    def __init__(self, client: docker.DockerClient, containers: tuple[str, ...]) -> None:
        self.client, self.containers = client, containers
        self.inside = 0  # reads made inside the containers
        self.stop = threading.Event()
        self.leaks: list[str] = []
        self.tools: set[str] = set()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _look(self, line: str) -> None:
        if PW in line:
            self.leaks.append(line)
        for tool in ("pg_dumpall", "mariadb-dump", "redis-cli"):
            if tool in line:
                self.tools.add(tool)

    def _inside(self) -> None:
        for name in self.containers:
            with contextlib.suppress(docker.errors.APIError):
                _code, out = self.client.containers.get(name).exec_run(
                    ["sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"]
                )
                self.inside += 1
                for line in out.decode(errors="replace").splitlines():
                    self._look(line)

    def _watch(self) -> None:
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            if rounds % 10 == 0:
                self._inside()
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        line = f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                self._look(line)

    def __enter__(self) -> CmdlineWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_each_engine_is_backed_up_verified_and_restored_without_a_password_in_sight(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"pg.yaml": pg(), "my.yaml": MARIADB, "kv.yaml": REDIS})
    converge(root, engine_host, state)
    for c in ("pgbk-db", "mybk-db", "kvbk-db"):
        wait_for(lambda c=c: ready(docker_client, c), timeout=90, interval=0.5)
    # markers, and enough rows that the dumps run long enough to be watched
    sql(docker_client, "pgbk-db", "CREATE TABLE marker (id int PRIMARY KEY, note text)")
    sql(docker_client, "pgbk-db", "INSERT INTO marker SELECT g, 'pg row ' || g FROM generate_series(1, 200000) g")
    sql(docker_client, "mybk-db", "CREATE TABLE app.marker (id int PRIMARY KEY, note text)")
    sql(docker_client, "mybk-db", "INSERT INTO app.marker SELECT seq, CONCAT('my row ', seq) FROM seq_1_to_50000")
    redis_cli(docker_client, "MSET", "marker:1", "kv row 1", "marker:2", "kv row 2")

    with CmdlineWatch(docker_client, ("pgbk-db", "mybk-db", "kvbk-db")) as watch:
        r = run("backup", "--all", "--verify", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stderr
    # the watcher did see the long dumps run (Redis's redis-cli calls last milliseconds: it may miss them, and they
    # carry the password in REDISCLI_AUTH by construction, tests/unit/core/test_dumps.py)
    assert watch.tools >= {"pg_dumpall", "mariadb-dump"}
    assert watch.leaks == [] and watch.inside > 0
    assert "MiB" in r.stderr and "verified" in r.stderr  # progress on stderr

    taken = {m["instance"]: m for m in backups(engine_host, state)}
    assert set(taken) == {"pg", "my", "kv"} and all(m["verified"] for m in taken.values())
    assert taken["pg"]["counts"]["app/public.marker"] == 200000
    assert taken["my"]["counts"]["app/marker"] == 50000
    assert taken["kv"]["counts"] == {"keys": 2}
    backup_dir = state.parent / "backups"
    assert oct(backup_dir.stat().st_mode & 0o777) == "0o700"
    for path in backup_dir.rglob("*"):  # manifests and dumps: hashes of passwords at most, never one
        if path.is_file():
            body = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert PW.encode() not in body, path

    # lose data, then restore each from its backup
    sql(docker_client, "pgbk-db", "DELETE FROM marker WHERE id > 10")
    sql(docker_client, "mybk-db", "DROP TABLE app.marker")
    redis_cli(docker_client, "FLUSHALL")
    for name in ("pg", "my", "kv"):
        r = run(
            "restore", name, "--from", taken[name]["id"], "--yes", "--dir", str(root), host=engine_host, state=state
        )
        assert r.code == 0, r.stderr
    assert sql(docker_client, "pgbk-db", "SELECT count(*), max(note) FROM marker") == "200000|pg row 99999"
    assert sql(docker_client, "mybk-db", "SELECT count(*) FROM app.marker") == "50000"
    wait_for(lambda: ready(docker_client, "kvbk-db"), timeout=60, interval=0.5)
    assert redis_cli(docker_client, "GET", "marker:2") == "kv row 2"
    # each restore first backed up what the server held (the way back)
    reasons = [m["reason"] for m in backups(engine_host, state)]
    assert sum(r.startswith("before restore") for r in reasons) == 3

    # a damaged backup is refused before anything is touched
    damaged = backup_dir / "pg" / taken["pg"]["file"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    sql(docker_client, "pgbk-db", "INSERT INTO marker VALUES (200001, 'after the backup')")
    r = run("restore", "pg", "--from", taken["pg"]["id"], "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "damaged" in r.stderr
    assert sql(docker_client, "pgbk-db", "SELECT note FROM marker WHERE id = 200001") == "after the backup"
    r = run("verify-backup", taken["pg"]["id"], "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "damaged" in r.stderr

    # a backup whose digest was made to match but whose content lost a row: without the key it is not authentic;
    # signed with the key (its holder made the mistake), the throw-away restore finds it out
    my = backup_dir / "my"
    body = gzip.decompress((my / taken["my"]["file"]).read_bytes()).replace(b"(7,'my row 7'),\n", b"", 1)
    forge(my, taken["my"], "my-forged", body)
    r = run("verify-backup", "my-forged", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "backup my-forged is not authentic" in r.stderr, r.stderr
    forge(my, taken["my"], "my-forged", body, key=state.parent / "backup.key")
    r = run("verify-backup", "my-forged", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "app/marker: 50000 in the backup, 49999 restored" in r.stderr, r.stderr
    r = run("verify-backup", taken["kv"]["id"], "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0 and "verified" in r.stdout
    # backup, restore and verify-backup are no passes: none is left begun and never finished in the history
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT command FROM passes WHERE finished IS NULL").fetchall() == []


def test_a_recreate_is_backed_up_first_and_not_run_without_its_backup(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"pg.yaml": pg(policy="  policy: {upgrade: recreate, backup: {keep: 2}}\n")})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    sql(docker_client, "pgbk-db", "CREATE TABLE marker AS SELECT 'before the recreate' AS note")

    # a changed declaration with a backup directory that cannot be used: the recreate fails, nothing is touched
    before = docker_client.containers.get("pgbk-db").id
    (root / "pg.yaml").write_text(
        pg(policy="  policy: {upgrade: recreate, backup: {keep: 2}}\n").replace(
            "POSTGRES_DB: app,", "POSTGRES_DB: app, TZ: UTC,"
        )
    )
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    r = run("apply", "--yes", "--dir", str(root), "--backup-dir", str(blocked), host=engine_host, state=state)
    assert r.code == 1 and "no backup before the recreate" in r.stdout + r.stderr, r.stdout + r.stderr
    assert docker_client.containers.get("pgbk-db").id == before
    assert docker_client.containers.get("pgbk-db").status == "running"

    # with a backup directory: backed up, then recreated, the data still there
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert docker_client.containers.get("pgbk-db").id != before
    taken = backups(engine_host, state)
    assert [m["reason"] for m in taken] == ["before recreate"]
    assert taken[0]["counts"] == {"app/public.marker": 1}
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SELECT note FROM marker") == "before the recreate"


def test_a_major_upgrade_by_dump_and_restore_and_its_rollback(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"pg.yaml": pg(policy="  policy: {upgrade: recreate}\n")})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    sql(docker_client, "pgbk-db", "CREATE TABLE marker (id int, note text)")
    sql(docker_client, "pgbk-db", "INSERT INTO marker SELECT g, 'written by 15' FROM generate_series(1, 1000) g")

    def declare(policy: str, vol: str = "pg-data") -> None:
        (root / "pg.yaml").write_text(pg("dbstate-local/postgres:17", "17", vol, f"  policy: {policy}\n"))

    # recreate across majors: a blocking finding, nothing touched
    declare("{upgrade: recreate}")
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "major-upgrade" in r.stdout
    assert docker_client.containers.get("pgbk-db").attrs["Config"]["Image"] == "dbstate-local/postgres:15"
    # a tag that hides the major (the diff cannot tell): the server's own version, read by the backup taken before
    # the recreate, stops it
    docker_client.images.get("dbstate-local/postgres:17").tag("dbstate-local/postgres", "next")
    (root / "pg.yaml").write_text(pg("dbstate-local/postgres:next", "17", "pg-data", "  policy: {upgrade: recreate}\n"))
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "never a plain recreate" in out and "reports postgres 15" in out, out
    assert docker_client.containers.get("pgbk-db").attrs["Config"]["Image"] == "dbstate-local/postgres:15"
    assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker") == "1000"
    # dump-restore onto the same volume: said what to declare, nothing touched
    declare("{upgrade: dump-restore}")
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert "declare a new named volume" in r.stdout and "pg-data-v17" in r.stdout

    # an extension 17 no longer ships: found while 15 still serves, asked of a throw-away 17: no downtime at all
    sql(docker_client, "pgbk-db", "CREATE EXTENSION adminpack", database="postgres")
    started = docker_client.containers.get("pgbk-db").attrs["State"]["StartedAt"]
    declare("{upgrade: dump-restore}", "pg-data-v17")
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "not started" in out and "does not ship the extension adminpack" in out, out
    c = docker_client.containers.get("pgbk-db")
    assert c.attrs["State"]["StartedAt"] == started and c.status == "running"  # never stopped
    sql(docker_client, "pgbk-db", "DROP EXTENSION adminpack", database="postgres")

    # a restore that fails (a setting 17 no longer knows): rolled back to 15 on its volume, with its rows
    sql(docker_client, "pgbk-db", "ALTER DATABASE app SET force_parallel_mode = off")
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "failed at 'restoring" in out and "rolled back" in out, out
    c = docker_client.containers.get("pgbk-db")
    assert c.attrs["Config"]["Image"] == "dbstate-local/postgres:15" and c.status == "running"
    assert [m["Name"] for m in c.attrs["Mounts"]] == ["pg-data"]
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker") == "1000"

    # the cause removed: upgraded, every row there, the old server and volume kept
    sql(docker_client, "pgbk-db", "ALTER DATABASE app RESET force_parallel_mode")
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")
    assert sql(docker_client, "pgbk-db", "SELECT count(*), min(note) FROM marker") == "1000|written by 15"
    # the planner's statistics (a dump carries none) rebuilt in the background once it serves
    assert "vacuumdb --all --analyze-in-stages --quiet runs in the background" in r.stderr, r.stderr
    analyzed = "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'marker'"
    wait_for(lambda: sql(docker_client, "pgbk-db", analyzed) == "t", timeout=60, interval=0.5)
    kept = docker_client.containers.get("pgbk-db.dbstate-kept-v15")
    assert kept.status in ("created", "exited")  # kept inert: a copy never started
    assert [m["Name"] for m in kept.attrs["Mounts"]] == ["pg-data"]
    assert docker_client.volumes.get("pg-data") is not None
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0 and "kept DatabaseInstance/pg" in r.stdout, r.stdout


# A client that writes a row every 100 ms through the instance's alias, and creates its table on every connection as
# many applications do; it prints `ok N` once the server said row N is committed.
WRITER = """i=0
while true; do
  i=$((i+1))
  if psql "host=pg user=app dbname=app connect_timeout=2" -qAt -v ON_ERROR_STOP=1 \\
      -c "CREATE TABLE IF NOT EXISTS writes (who text, n int); INSERT INTO writes VALUES ('$WHO', $i)" >/dev/null 2>&1
  then echo "ok $i"; fi
  sleep 0.1
done"""


def start_writer(client: docker.DockerClient, who: str, labels: dict[str, str]) -> Any:
    return client.containers.run(
        "dbstate-local/postgres:15",
        entrypoint=["sh", "-c", WRITER],
        name=f"writer-{who}",
        environment={"WHO": who, "PGPASSWORD": PW},  # the password in its env, never on a command line
        network="bk-net",
        labels={"dbstate-test": "1", **labels},
        detach=True,
    )


def committed(c: Any) -> set[int]:
    return {int(line.split()[1]) for line in c.logs().decode().splitlines() if line.startswith("ok ")}


def test_an_upgrade_under_writing_clients_loses_no_committed_write_and_the_new_server_waits_for_its_data(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    """The consumer the desired state names is paused for the cutover; a client nobody declared keeps writing and
    is refused until the new server holds the data, checked: no client reaches a server being restored (its table
    created on connect would break the restore), the upgrade succeeds, and every row a client saw committed is
    there after it, on the new major."""
    state = tmp_path / "state.db"
    consumer = """apiVersion: dbstate.io/v1
kind: Consumer
metadata: {name: writer-a}
spec:
  containerName: writer-a
  networks: [{name: bk-net}]
  uses: [{instance: pg}]
"""
    files = {"pg.yaml": pg(), "writer.yaml": consumer}
    root = tree(tmp_path, files)
    scope = ("--allow-label", "writer=yes")
    r = run("apply", "--yes", "--dir", str(root), *scope, host=engine_host, state=state)
    assert r.code in (0, 1), r.stdout + r.stderr  # writer-a does not exist yet: a missing-consumer finding
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    sql(docker_client, "pgbk-db", "CREATE TABLE writes (who text, n int)")
    sql(docker_client, "pgbk-db", "INSERT INTO writes SELECT 'seed', g FROM generate_series(1, 2000) g")
    writers = {who: start_writer(docker_client, who, {"writer": "yes"} if who == "a" else {}) for who in ("a", "b")}
    try:
        wait_for(lambda: all(len(committed(c)) >= 10 for c in writers.values()), timeout=60, interval=0.5)
        (root / "pg.yaml").write_text(
            pg("dbstate-local/postgres:17", "17", "pg-data-v17", "  policy: {upgrade: dump-restore}\n")
        )
        r = run("plan", "--dir", str(root), *scope, host=engine_host, state=state)
        assert "writer-a paused for the cutover" in r.stdout, r.stdout
        helpers_before = {n.name for n in docker_client.networks.list() if n.name.startswith("dbstate-helper-")}
        r = run("apply", "--yes", "--dir", str(root), *scope, host=engine_host, state=state)
        out = r.stdout + r.stderr
        assert r.code == 0, out
        assert "paused writer-a for the cutover" in out and "rolled back" not in out, out
        assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")
        # both write to the new server after the cutover: writer-a was resumed, writer-b found the alias again
        at_cutover = {who: max(committed(c)) for who, c in writers.items()}
        wait_for(
            lambda: all(max(committed(c)) >= at_cutover[who] + 10 for who, c in writers.items()),
            timeout=60,
            interval=0.5,
        )
        for c in writers.values():
            c.pause()  # what each has logged as committed no longer grows
        rows = sql(docker_client, "pgbk-db", "SELECT who || ' ' || n FROM writes WHERE who <> 'seed'").splitlines()
        stored = {(line.split()[0], int(line.split()[1])) for line in rows}
        for who, c in writers.items():
            lost = {n for n in committed(c) if (who, n) not in stored}
            assert not lost, f"writer-{who}: committed and lost: {sorted(lost)[:10]}"
        assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM writes WHERE who = 'seed'") == "2000"
        # nothing left of the cutover: no private network, and the new server only on its declared network
        nets = docker_client.containers.get("pgbk-db").attrs["NetworkSettings"]["Networks"]
        assert list(nets) == ["bk-net"] and "pg" in (nets["bk-net"]["Aliases"] or [])
        helpers_after = {n.name for n in docker_client.networks.list() if n.name.startswith("dbstate-helper-")}
        assert helpers_after <= helpers_before
    finally:
        for c in writers.values():
            with contextlib.suppress(docker.errors.APIError):
                c.remove(force=True)


def test_a_mariadb_image_step_is_backed_up_then_mariadb_upgrade_runs(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    recreate = "  policy: {upgrade: recreate}\n"
    root = tree(tmp_path, {"my.yaml": MARIADB + recreate})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "mybk-db"), timeout=90, interval=0.5)
    sql(docker_client, "mybk-db", "CREATE TABLE marker AS SELECT 'before the step' AS note")
    # a minor step (the same major, another tag): recreated after a backup, then mariadb-upgrade
    docker_client.images.get("dbstate-local/mariadb:10.11").tag("dbstate-local/mariadb", "10.11-step")
    (root / "my.yaml").write_text(MARIADB.replace("mariadb:10.11\n", "mariadb:10.11-step\n") + recreate)
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert "mariadb-upgrade done on mybk-db" in r.stderr
    assert [m["reason"] for m in backups(engine_host, state)] == ["before recreate"]
    assert sql(docker_client, "mybk-db", "SELECT note FROM marker") == "before the step"


def test_a_mariadb_major_step_by_dump_and_restore_runs_mariadb_upgrade_and_keeps_every_row(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    """MariaDB 10.11 (bookworm) -> 11.8 (trixie): a major step is a dump and restore into the new volume, with the
    backup first and `mariadb-upgrade` on the new server; the old server and volume are kept."""
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"my.yaml": MARIADB})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "mybk-db"), timeout=90, interval=0.5)
    sql(docker_client, "mybk-db", "CREATE TABLE marker (id int primary key, note text)")
    sql(docker_client, "mybk-db", "INSERT INTO marker SELECT seq, 'written by 10.11' FROM seq_1_to_1000")
    step = MARIADB.replace("mariadb:10.11\n", "mariadb:11.8\n").replace('"10.11"', '"11.8"')
    (root / "my.yaml").write_text(
        step.replace("source: my-data,", "source: my-data-v11,") + "  policy: {upgrade: dump-restore}\n"
    )
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 2 and "mariadb 10.11 -> 11.8" in r.stdout, r.stdout
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: ready(docker_client, "mybk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "mybk-db", "SELECT VERSION()").startswith("11.8")
    assert sql(docker_client, "mybk-db", "SELECT count(*), min(note) FROM marker") == "1000\twritten by 10.11"
    assert [m["reason"] for m in backups(engine_host, state)] == ["before upgrade 10.11 -> 11.8"]
    kept = docker_client.containers.get("mybk-db.dbstate-kept-v10.11")
    assert [m["Name"] for m in kept.attrs["Mounts"]] == ["my-data"]
    assert docker_client.containers.get("mybk-db").attrs["Mounts"][0]["Name"] == "my-data-v11"
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout


def test_a_restore_to_a_new_volume_overwrites_nothing_and_the_declaration_then_matches(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    root = tree(tmp_path, {"pg.yaml": pg()})
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    sql(docker_client, "pgbk-db", "CREATE TABLE marker AS SELECT g AS id FROM generate_series(1, 100) g")
    r = run("backup", "pg", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stderr
    (taken,) = backups(engine_host, state)
    sql(docker_client, "pgbk-db", "INSERT INTO marker VALUES (101)")  # written after the backup: must survive

    args = ("restore", "pg", "--from", taken["id"], "--to-new-volume", "pg-restored", "--yes", "--dir", str(root))
    r = run(*args, host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    assert "Now declare it" in r.stdout and "source: pg-restored, target: /var/lib/postgresql/data" in r.stdout
    new = docker_client.containers.get("pgbk-db")
    assert [m["Name"] for m in new.attrs["Mounts"]] == ["pg-restored"]
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SELECT count(*), max(id) FROM marker") == "100|100"
    (kept,) = [c for c in docker_client.containers.list(all=True) if c.name.startswith("pgbk-db.dbstate-kept-")]
    assert kept.status in ("created", "exited")  # kept inert: a copy never started
    assert [m["Name"] for m in kept.attrs["Mounts"]] == ["pg-data"]

    # until the declaration says so, nothing recreates it; once it does, it is in sync
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert "data-moved" in r.stdout and "kept DatabaseInstance/pg" in r.stdout, r.stdout
    (root / "pg.yaml").write_text(pg(vol="pg-restored"))
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0 and "data-moved" not in r.stdout and "In sync" in r.stdout, r.stdout

    # the old volume still holds the row written after the backup: its old server, started again, says so
    docker_client.containers.get("pgbk-db").stop(timeout=10)
    kept.start()
    wait_for(lambda: ready(docker_client, kept.name), timeout=90, interval=0.5)
    assert sql(docker_client, kept.name, "SELECT count(*), max(id) FROM marker") == "101|101"


def test_restores_under_a_running_controller_are_handed_to_it_and_it_keeps_repairing_the_others(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    """Operators never stop `run` to restore: the command hands the restore to the controller that holds the lease
    (which holds the instance out of its passes meanwhile: a Redis restore stops its server, and run must not start it
    halfway), prints its progress, and exits with its result; run repairs the others throughout."""
    from tests.e2e.test_run import Controller, running

    root = tree(tmp_path, {"pg.yaml": pg(), "kv.yaml": REDIS})
    state = tmp_path / "state.db"
    converge(root, engine_host, state)
    wait_for(lambda: ready(docker_client, "pgbk-db") and ready(docker_client, "kvbk-db"), 60)
    sql(docker_client, "pgbk-db", "CREATE TABLE marker (n int); INSERT INTO marker SELECT generate_series(1, 10)")
    redis_cli(docker_client, "set", "marker", "before")
    c = Controller(root, engine_host, state, tmp_path / "run.log", env=ENV)
    try:
        wait_for(c.ready, timeout=30)
        # backing up (and verifying) needs no lease: it works beside run as it is
        taken = {}
        for name in ("pg", "kv"):
            r = run("backup", name, "--verify", "--dir", str(root), host=engine_host, state=state)
            assert r.code == 0 and "verified" in r.stdout, r.stdout + r.stderr
            taken[name] = r.stdout.split()[0]
        sql(docker_client, "pgbk-db", "DELETE FROM marker WHERE n > 3")
        redis_cli(docker_client, "set", "marker", "after")

        r = run("restore", "pg", "--from", taken["pg"], "--yes", "--dir", str(root), host=engine_host, state=state)
        assert r.code == 0, r.stdout + r.stderr
        assert "handed to the running controller" in r.stdout and "restored: pgbk-db holds" in r.stdout
        assert "queued as job" in r.stderr and "backing up" in r.stderr.lower()  # the controller's progress, here
        assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker") == "10"

        r = run("restore", "kv", "--from", taken["kv"], "--yes", "--dir", str(root), host=engine_host, state=state)
        assert r.code == 0, r.stdout + r.stderr
        wait_for(lambda: ready(docker_client, "kvbk-db"), 30)
        assert redis_cli(docker_client, "get", "marker") == "before"

        # a job that fails says why, on stderr, with exit 1; the controller stays up
        bad = run(
            "restore", "pg", "--from", "no-such-backup", "--yes", "--dir", str(root), host=engine_host, state=state
        )
        assert bad.code == 1 and "no-such-backup" in bad.stderr, bad.stdout + bad.stderr

        # run never stopped, and still repairs what drifts
        docker_client.containers.get("kvbk-db").stop(timeout=1)
        wait_for(lambda: running(docker_client, "kvbk-db"), timeout=20)
        ended = [rec for rec in c.logs() if rec.get("msg") == "job ended"]
        assert [rec.get("exit_code") for rec in ended] == [0, 0, 1]
        assert c.proc.poll() is None
        # status (and the web view's /api/status) lists them, newest first
        s = run("status", host=engine_host, state=state)
        assert "jobs (handed to a running controller, newest first):" in s.stdout, s.stdout
        assert "failed    job 3  restore pg" in s.stdout and "done      job 1  restore pg" in s.stdout, s.stdout
        status_doc = json.loads(c.get("/api/status")[1])
        assert [(j["id"], j["state"], j["exit_code"]) for j in status_doc["jobs"]] == [
            (3, "failed", 1),
            (2, "done", 0),
            (1, "done", 0),
        ]
        assert PW not in c.get("/api/status")[1] and PW not in s.stdout
    finally:
        code, _seconds = c.stop()
    assert code == 0
    # the jobs' progress and output are kept in the state database: scrubbed, like every other record there
    for kept in state.parent.glob("state.db*"):  # the database and its write-ahead log
        assert PW.encode() not in kept.read_bytes(), kept
    assert PW not in (tmp_path / "run.log").read_text()
