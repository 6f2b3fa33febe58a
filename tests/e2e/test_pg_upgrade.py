"""policy.upgrade: pg-upgrade against real servers, 15 -> 17 with the two stand-in images only (bookworm's 15, trixie's
17): --copy under a client that keeps writing (every committed write on 17, the old server and volume kept so that
`dbstate rollback` goes back to 15 with its rows), --link (seconds, the backup taken first, and a rollback refused
that names it), a `pg_upgrade --check` failure after the stop rolled back to 15 with every row, and an extension the
new image lacks refused before any downtime, and `dbstate apply` killed at each step of an upgrade: the next apply
finishes what the killed one left (its helper waited for, its output cleared, the old server started again) and the
upgrade ends with every row, or, killed after the new server started unchecked, nothing reaches that server until
`dbstate rollback` goes back."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.e2e.helpers import REPO, wait_for
from tests.e2e.test_backup import ENV, PW, backups, committed, pg, ready, run, sql, start_writer, tree

pytestmark = pytest.mark.engine

CONSUMER = """apiVersion: dbstate.io/v1
kind: Consumer
metadata: {name: writer-a}
spec:
  containerName: writer-a
  networks: [{name: bk-net}]
  uses: [{instance: pg}]
"""


def seeded(
    tmp_path: Path, client: docker.DockerClient, host: str, state: Path, policy: str, files: dict[str, str]
) -> Path:
    root = tree(tmp_path, {"pg.yaml": pg(policy=f"  policy: {policy}\n"), **files})
    r = run("apply", "--yes", "--dir", str(root), "--allow-label", "writer=yes", host=host, state=state)
    assert r.code in (0, 1), r.stdout + r.stderr  # 1: a declared consumer that does not run yet
    wait_for(lambda: ready(client, "pgbk-db"), timeout=90, interval=0.5)
    sql(
        client, "pgbk-db", "CREATE TABLE marker AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g"
    )
    sql(client, "pgbk-db", "CREATE INDEX ON marker (note)")
    return root


def to_17(root: Path, policy: str) -> None:
    (root / "pg.yaml").write_text(pg("dbstate-local/postgres:17", "17", "pg-data-v17", f"  policy: {policy}\n"))


def test_pg_upgrade_copy_keeps_every_committed_write_and_rollback_goes_back_to_15(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    scope = ("--allow-label", "writer=yes")
    root = seeded(tmp_path, docker_client, engine_host, state, "{upgrade: pg-upgrade}", {"writer.yaml": CONSUMER})
    writer = start_writer(docker_client, "a", {"writer": "yes"})
    try:
        wait_for(lambda: len(committed(writer)) >= 10, timeout=60, interval=0.5)
        to_17(root, "{upgrade: pg-upgrade}")
        r = run("plan", "--dir", str(root), *scope, host=engine_host, state=state)
        assert "pg_upgrade --copy into pg-data-v17" in r.stdout and "`dbstate rollback` goes back" in r.stdout, r.stdout
        assert "writer-a paused for the cutover" in r.stdout, r.stdout
        r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
        out = r.stdout + r.stderr
        assert r.code == 0, out
        assert "copied" in out and "MiB of dbstate-local/postgres:15" in out, out  # the old userland, from its image
        assert "pg_upgrade --copy done" in out and "rolled back" not in out, out
        assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")
        assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == "5000|12502500"
        assert sql(docker_client, "pgbk-db", "SELECT count(*) FROM marker WHERE note = md5('77')") == "1"
        at_cutover = max(committed(writer))
        wait_for(lambda: max(committed(writer)) >= at_cutover + 10, timeout=60, interval=0.5)  # resumed, on 17
        writer.pause()
        stored = {int(n) for n in sql(docker_client, "pgbk-db", "SELECT n FROM writes").split()}
        lost = committed(writer) - stored
        assert not lost, f"committed and lost: {sorted(lost)[:10]}"
        taken = backups(engine_host, state)
        assert [m["reason"] for m in taken] == ["before upgrade 15 -> 17 (pg_upgrade --copy)"]
        kept = docker_client.containers.get("pgbk-db.dbstate-kept-v15")
        assert kept.status in ("created", "exited") and [m["Name"] for m in kept.attrs["Mounts"]] == ["pg-data"]
        assert "io.dbstate.spent-by" not in kept.labels
        assert run("plan", "--dir", str(root), *scope, host=engine_host, state=state).code == 0

        # the way back: the commit reverted; 17 holds writes since the cutover, so only with --discard-writes
        (root / "pg.yaml").write_text(pg(policy="  policy: {upgrade: pg-upgrade}\n"))
        r = run("rollback", "pg", "--yes", "--dir", str(root), host=engine_host, state=state)
        assert r.code == 1 and "holds writes made since the cutover" in r.stderr, r.stdout + r.stderr
        r = run("rollback", "pg", "--yes", "--discard-writes", "--dir", str(root), host=engine_host, state=state)
        assert r.code == 0, r.stdout + r.stderr
        wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
        assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("15")
        assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == "5000|12502500"
        # 15 holds every write committed before the cutover, without a gap (the upgrade never wrote its volume)
        on_15 = {int(n) for n in sql(docker_client, "pgbk-db", "SELECT n FROM writes").split()}
        assert on_15 and {n for n in committed(writer) if n <= max(on_15)} <= on_15
    finally:
        with contextlib.suppress(docker.errors.APIError):
            writer.remove(force=True)


def test_pg_upgrade_link_is_backed_up_first_rolls_back_a_failed_check_and_refuses_a_rollback_after(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    policy = "{upgrade: pg-upgrade, upgradeTransfer: link, backup: {beforeChange: false}}"
    root = seeded(tmp_path, docker_client, engine_host, state, "{upgrade: pg-upgrade}", {})

    # an extension 17 does not ship: refused while 15 serves, never stopped
    sql(docker_client, "pgbk-db", "CREATE EXTENSION adminpack", database="postgres")
    started = docker_client.containers.get("pgbk-db").attrs["State"]["StartedAt"]
    to_17(root, policy)
    r = run("plan", "--dir", str(root), host=engine_host, state=state)
    assert "pg_upgrade --link into pg-data-v17" in r.stdout and "no rollback" in r.stdout, r.stdout
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "not started" in out and "does not ship the extension adminpack" in out, out
    assert docker_client.containers.get("pgbk-db").attrs["State"]["StartedAt"] == started
    sql(docker_client, "pgbk-db", "DROP EXTENSION adminpack", database="postgres")

    # what only pg_upgrade's checks find (a reg* type in a user table): found after the stop, before any file moved;
    # rolled back to 15 on its volume with every row
    sql(docker_client, "pgbk-db", "CREATE TABLE uses_regproc (f regproc)")
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "failed at 'pg_upgrade's checks'" in out and "rolled back" in out, out
    assert "reg*" in out or "regproc" in out, out
    c = docker_client.containers.get("pgbk-db")
    assert c.attrs["Config"]["Image"] == "dbstate-local/postgres:15" and c.status == "running"
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == "5000|12502500"
    sql(docker_client, "pgbk-db", "DROP TABLE uses_regproc")

    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 0, out
    assert "pg_upgrade --link done" in out and "now belongs to the new cluster" in out, out
    # --link is checked by every table's and index's files (the marker table and its primary key), no row read
    assert "2 tables' and indexes' files" in out, out
    assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")
    assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == "5000|12502500"
    # link leaves no way back but a backup: taken first by each attempt, even with beforeChange: false
    taken = [m for m in backups(engine_host, state) if "pg_upgrade --link" in m["reason"]]
    assert len(taken) == 2 and taken[-1]["counts"]["app/public.marker"] == 5000
    kept = docker_client.containers.get("pgbk-db.dbstate-kept-v15")
    assert kept.labels["io.dbstate.spent-by"] == "pg_upgrade --link"
    assert kept.labels["io.dbstate.backup"] == taken[-1]["id"]
    (root / "pg.yaml").write_text(pg(policy="  policy: {upgrade: pg-upgrade}\n"))
    r = run("rollback", "pg", "--yes", "--discard-writes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 1 and "cannot start again" in r.stderr and taken[-1]["id"] in r.stderr, r.stdout + r.stderr
    assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")  # nothing changed


def killed_at(marker: str, root: Path, host: str, state: Path, delay: float = 0.0) -> str:
    """`dbstate apply` killed (SIGKILL: no cleanup of its own) `delay` seconds after it says `marker`; its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
    env |= ENV | {"DBSTATE_STATE": str(state), "PYTHONPATH": str(REPO), "DOCKER_HOST": host}
    argv = [sys.executable, "-m", "controller.cli", "apply", "--yes", "--dir", str(root)]
    said: list[str] = []
    with subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            said.append(line)
            if marker in line:
                time.sleep(delay)
                break
        proc.kill()
    out = "".join(said)
    assert marker in out, out
    assert PW not in out
    return out


def helpers_left(client: docker.DockerClient) -> list[str]:
    return [c.name for c in client.containers.list(all=True, filters={"label": "io.dbstate.helper"})]


def test_a_pg_upgrade_killed_at_each_step_is_finished_by_the_next_apply_with_every_row(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    state = tmp_path / "state.db"
    root = seeded(tmp_path, docker_client, engine_host, state, "{upgrade: pg-upgrade}", {})
    to_17(root, "{upgrade: pg-upgrade}")
    rows = "5000|12502500"

    # killed while it copies the old userland, before any downtime: 15 serves on, untouched
    killed_at("copying PostgreSQL 15 out of", root, engine_host, state, delay=0.5)
    c = docker_client.containers.get("pgbk-db")
    assert c.attrs["Config"]["Image"] == "dbstate-local/postgres:15" and c.status == "running"
    assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == rows

    # killed while pg_upgrade runs in its helper, 15 stopped: the helper goes on without dbstate
    killed_at("(its consistency checks first)", root, engine_host, state, delay=1.0)
    assert docker_client.containers.get("pgbk-db").status == "exited"
    assert helpers_left(docker_client)  # the transplant's toolbox and the upgrade's helper

    # the next apply waits for that helper, clears what it left uninstalled, starts 15 again, and upgrades
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 0, out
    assert "clearing an interrupted pg_upgrade's output in pg-data-v17" in out, out
    assert "starting pgbk-db (found stopped)" in out, out
    assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("17")
    assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == rows
    assert helpers_left(docker_client) == []


def test_an_upgrade_killed_after_the_new_server_started_reaches_nobody_until_rollback(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    """dump-restore: the new server is created, then the dump restored into it; killed in between, it holds part of
    the data. Connecting it (a plain network repair) would let clients onto it: a blocking finding instead."""
    state = tmp_path / "state.db"
    root = seeded(tmp_path, docker_client, engine_host, state, "{upgrade: dump-restore}", {})
    to_17(root, "{upgrade: dump-restore}")
    killed_at("reachable by nothing yet", root, engine_host, state, delay=0.3)
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    out = r.stdout + r.stderr
    assert r.code == 1 and "interrupted-cutover" in out and "connect" not in r.stdout.split("Changes:")[-1][:200], out
    new = docker_client.containers.get("pgbk-db")
    assert new.attrs["Config"]["Image"] == "dbstate-local/postgres:17"
    assert all(n.startswith("dbstate-helper-") for n in new.attrs["NetworkSettings"]["Networks"])
    # the way back: the commit reverted, then rollback (nothing was written since: no client reached it)
    (root / "pg.yaml").write_text(pg(policy="  policy: {upgrade: dump-restore}\n"))
    r = run("rollback", "pg", "--yes", "--discard-writes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: ready(docker_client, "pgbk-db"), timeout=90, interval=0.5)
    assert sql(docker_client, "pgbk-db", "SHOW server_version_num").startswith("15")
    assert sql(docker_client, "pgbk-db", "SELECT count(*), sum(id) FROM marker") == "5000|12502500"
    assert run("plan", "--dir", str(root), host=engine_host, state=state).code == 0
