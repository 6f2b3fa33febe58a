"""`dbstate run` against a real engine and real git: commits are converged, drift is repaired with nobody running a
command, an invalid commit tears nothing down, the engine restarting is survived, one writer per engine, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.helpers import ENV, REPO, dbstate, network, redis_instance, wait_for
from tests.helpers import SECRET, git, write_tree

pytestmark = pytest.mark.engine

NO_RESTART = '  restartPolicy: "no"\n'  # so that only dbstate can bring a killed container back


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def commit_file(root: Path, name: str, text: str, message: str) -> str:
    """Commit a new file before it appears in the worktree (written from the committed blob after the commit): a
    watching controller never reads it uncommitted, so what it makes of it carries this commit."""
    staged = root.parent / f".{name}.staged"
    staged.write_text(text)
    blob = git(root, "hash-object", "-w", str(staged))
    git(root, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
    git(root, "commit", "-qm", message)
    os.replace(staged, root / name)
    return git(root, "rev-parse", "HEAD")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(
        self, root: Path, host: str, state: Path, log: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.log_path = log
        environ = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DBSTATE_STATE")}
        environ.update(ENV, **(env or {}))
        environ.update(DOCKER_HOST=host, DBSTATE_STATE=str(state), PYTHONPATH=str(REPO))
        self.log_file = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "run",
                "--dir",
                str(root),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-format",
                "json",
                "--resync",
                "5",
                "--lease-ttl",
                "6",
                "--retry-budget",
                "2",
                *extra,
            ],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
        )

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"raw": line})
        return out

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def stop(self) -> tuple[int, float]:
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log_file.close()
        text = self.log_path.read_text()
        assert SECRET not in text, "a secret leaked into the controller's log"
        return code, time.monotonic() - t0


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = write_tree(
        tmp_path / "repo",
        {
            "net.yaml": network("net-a"),
            "kv.yaml": redis_instance("kv-a", "kv-a-db", extra=NO_RESTART),
        },
    )
    git(root, "init", "-q")
    commit(root, "initial desired state")
    return root


@pytest.fixture
def controller(
    repo: Path, engine_host: str, docker_client: docker.DockerClient, tmp_path: Path
) -> Iterator[Controller]:
    c = Controller(repo, engine_host, tmp_path / "state.db", tmp_path / "run.log")
    try:
        wait_for(c.ready, timeout=30)
        yield c
    finally:
        code, seconds = c.stop()
        assert code == 0, f"exit {code}: {c.log_path.read_text()[-2000:]}"
        assert seconds < 10


def running(client: docker.DockerClient, name: str) -> bool:
    try:
        return bool(client.containers.get(name).status == "running")
    except docker.errors.NotFound:
        return False


def test_repairs_stop_kill_and_disconnect_on_its_own(controller, docker_client):
    wait_for(lambda: running(docker_client, "kv-a-db"))
    c = docker_client.containers.get("kv-a-db")
    c.stop(timeout=1)
    wait_for(lambda: running(docker_client, "kv-a-db"), timeout=15)
    docker_client.containers.get("kv-a-db").kill()
    wait_for(lambda: running(docker_client, "kv-a-db"), timeout=15)
    docker_client.networks.get("net-a").disconnect("kv-a-db")

    def attached() -> bool:
        nets = docker_client.containers.get("kv-a-db").attrs["NetworkSettings"]["Networks"]
        return "net-a" in nets and "kv-a" in (nets["net-a"].get("Aliases") or [])

    wait_for(attached, timeout=15)
    triggers = " ".join(str(r.get("trigger", "")) for r in controller.logs())
    assert "docker container" in triggers and "docker network disconnect" in triggers
    status, body = controller.get("/metrics")
    assert status == 200
    assert 'dbstate_changes_total{action="start",host="default",outcome="ok"}' in body
    assert 'dbstate_changes_total{action="connect",host="default",outcome="ok"}' in body
    assert 'dbstate_instance_up{host="default",name="kv-a"} 1' in body
    assert "dbstate_last_successful_pass_timestamp_seconds" in body
    assert controller.get("/healthz") == (200, "ok\n")


def test_commits_converge_and_an_invalid_commit_tears_nothing_down(
    controller, repo, docker_client, engine_host, tmp_path
):
    wait_for(lambda: running(docker_client, "kv-a-db"))
    rev = commit_file(repo, "kv2.yaml", redis_instance("kv-b", "kv-b-db"), "add kv-b")
    wait_for(lambda: running(docker_client, "kv-b-db"), timeout=15)
    containers = docker_client.containers.get("kv-b-db").labels
    assert containers["io.dbstate.revision"] == rev
    # an invalid commit: everything stays, the error names the file and line
    (repo / "kv2.yaml").write_text(redis_instance("kv-b", "kv-b-db", extra="  colour: red\n"))
    (repo / "kv.yaml").write_text("kind: [\n")
    bad = commit(repo, "broken")
    wait_for(lambda: any(r.get("revision") == bad for r in controller.logs()), timeout=15)
    logged = [r for r in controller.logs() if r.get("msg", "").startswith("desired state error")]
    assert {(Path(r["file"]).name, r["field"]) for r in logged} >= {("kv2.yaml", "spec.colour")}
    assert any(Path(r["file"]).name == "kv.yaml" and r["line"] >= 1 for r in logged)
    time.sleep(1)
    assert running(docker_client, "kv-a-db") and running(docker_client, "kv-b-db")
    status = subprocess.run(
        [sys.executable, "-m", "controller.cli", "status", "--state", str(tmp_path / "state.db"), "--output", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert status.returncode == 0, status.stderr
    rows = {r["key"]: r for r in json.loads(status.stdout)["resources"]}
    assert rows["DatabaseInstance/kv-b"]["status"] == "invalid"
    plan = subprocess.run(
        [sys.executable, "-m", "controller.cli", "plan", "--dir", str(repo), "--output", "json"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            **ENV,
            "DOCKER_HOST": engine_host,
            "PYTHONPATH": str(REPO),
            "DBSTATE_STATE": str(tmp_path / "plan.db"),
        },
    )
    assert plan.returncode == 1, plan.stderr
    errors = json.loads(plan.stdout)["errors"]
    colour_line = (repo / "kv2.yaml").read_text().splitlines().index("  colour: red") + 1
    found = {(Path(e["file"]).name, e["line"]) for e in errors}
    assert ("kv2.yaml", colour_line) in found and any(name == "kv.yaml" for name, _ in found), found
    # revert: converges again (and a stopped container is started)
    git(repo, "revert", "--no-edit", "HEAD")
    docker_client.containers.get("kv-a-db").stop(timeout=1)
    wait_for(lambda: running(docker_client, "kv-a-db"), timeout=20)


def test_source_commit_ignores_uncommitted_edits(repo, engine_host, docker_client, tmp_path):
    c = Controller(repo, engine_host, tmp_path / "state.db", tmp_path / "run.log", "--source", "commit")
    try:
        wait_for(c.ready, timeout=30)
        wait_for(lambda: running(docker_client, "kv-a-db"))
        (repo / "kv2.yaml").write_text(redis_instance("kv-b", "kv-b-db"))  # not committed
        wait_for(lambda: any("uncommitted edits are ignored" in str(r.get("msg")) for r in c.logs()), timeout=10)
        time.sleep(2)
        assert not running(docker_client, "kv-b-db")
        commit(repo, "now committed")
        wait_for(lambda: running(docker_client, "kv-b-db"), timeout=15)
    finally:
        code, _ = c.stop()
        assert code == 0


def test_git_pull_fast_forwards_and_refuses_a_diverged_history(repo, engine_host, docker_client, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(remote)], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    c = Controller(
        clone,
        engine_host,
        tmp_path / "state.db",
        tmp_path / "run.log",
        "--git-pull",
        "origin",
        branch,
        "--pull-interval",
        "1",
    )
    try:
        wait_for(c.ready, timeout=30)
        (repo / "kv2.yaml").write_text(redis_instance("kv-b", "kv-b-db"))
        commit(repo, "add kv-b upstream")
        git(repo, "push", "-q", str(remote), f"HEAD:{branch}")
        wait_for(lambda: running(docker_client, "kv-b-db"), timeout=20)
        # diverge: a local commit in the controller's checkout, another upstream
        (clone / "local.yaml").write_text(network("net-local"))
        commit(clone, "local change")
        (repo / "kv3.yaml").write_text(redis_instance("kv-c", "kv-c-db"))
        commit(repo, "add kv-c upstream")
        git(repo, "push", "-q", str(remote), f"HEAD:{branch}")
        wait_for(lambda: any("diverged" in str(r.get("error", "")) for r in c.logs()), timeout=15)
        assert not running(docker_client, "kv-c-db")
    finally:
        code, _ = c.stop()
        assert code == 0


def test_second_controller_refuses_until_the_first_stops(controller, repo, engine_host, tmp_path, docker_client):
    second = Controller(repo, engine_host, tmp_path / "state2.db", tmp_path / "run2.log")
    try:
        wait_for(
            lambda: any("another dbstate run holds the engine lease" in str(r.get("msg")) for r in second.logs()),
            timeout=15,
        )
        assert second.get("/readyz")[0] == 503
        assert not any(r.get("msg") == "pass" for r in second.logs())
        code, seconds = controller.stop()
        assert code == 0 and seconds < 10
        wait_for(second.ready, timeout=20)  # the lease was released on SIGTERM
        docker_client.containers.get("kv-a-db").stop(timeout=1)
        wait_for(lambda: running(docker_client, "kv-a-db"), timeout=15)
    finally:
        code, _ = second.stop()
        assert code == 0
        controller.proc.poll()


def test_engine_restart_under_a_running_controller(engine, repo, tmp_path, docker_client):
    c = Controller(repo, engine.host, tmp_path / "state.db", tmp_path / "run.log")
    try:
        wait_for(c.ready, timeout=30)
        wait_for(lambda: running(docker_client, "kv-a-db"))
        engine.stop()
        wait_for(lambda: not c.ready(), timeout=20)
        assert c.get("/healthz")[0] == 200  # the process stays up
        engine.start()
        client = docker.DockerClient(base_url=engine.host, version="auto", timeout=60)
        try:
            # restartPolicy "no": the engine did not bring it back; dbstate must
            wait_for(lambda: running(client, "kv-a-db"), timeout=40)
            wait_for(c.ready, timeout=20)
        finally:
            client.close()
    finally:
        code, _ = c.stop()
        assert code == 0


def test_a_full_disk_under_the_state_database_fails_passes_not_the_controller(
    repo, engine_host, tmp_path, docker_client
):
    """The state database on a small tmpfs that fills up: each pass is reported failed (naming the file) and
    retried, the process stays up and says so on /healthz, and once there is room again the drift is repaired."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    c = None
    try:
        c = Controller(repo, engine_host, disk / "state" / "state.db", tmp_path / "run.log")
        wait_for(c.ready, timeout=30)
        wait_for(lambda: running(docker_client, "kv-a-db"))
        filler = disk / "filler"
        with filler.open("wb", buffering=0) as f:  # unbuffered: nothing is left to flush (and fail) at close
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        docker_client.containers.get("kv-a-db").stop(timeout=1)
        wait_for(lambda: any("state database" in str(r.get("error", "")) for r in c.logs()), timeout=20)
        failed = [r for r in c.logs() if r.get("msg") == "pass failed"]
        assert failed and all("Traceback" not in str(r) for r in c.logs()), failed
        assert "disk is full" in str(failed[-1]["error"]) and str(disk) in str(failed[-1]["error"])
        assert c.proc.poll() is None and c.get("/healthz")[0] == 200
        filler.unlink()
        wait_for(lambda: running(docker_client, "kv-a-db"), timeout=30)
        wait_for(c.ready, timeout=30)
    finally:
        if c is not None:
            code, _ = c.stop()
            assert code == 0
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_scheduled_backups_are_taken_by_run_and_shown_in_metrics_and_status(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    schedule = "  policy: {backup: {schedule: 1m, keep: 2}}\n"
    root = write_tree(
        tmp_path / "sched", {"net.yaml": network("net-a"), "kv.yaml": redis_instance("kv-s", "kv-s-db", extra=schedule)}
    )
    state = tmp_path / "state.db"
    c = Controller(root, engine_host, state, tmp_path / "run.log")
    try:
        wait_for(c.ready, timeout=30)
        docker_client.containers.get("kv-s-db").exec_run(
            ["redis-cli", "--no-auth-warning", "set", "marker", "scheduled"], environment={"REDISCLI_AUTH": SECRET}
        )
        # the first look at the schedule comes 15 s after the start; no backup yet, so one is due
        last = 'dbstate_backup_last_success_timestamp_seconds{host="default",instance="kv-s"}'
        wait_for(lambda: last in c.get("/metrics")[1], 45)
        assert 'dbstate_backup_last_size_bytes{host="default",instance="kv-s"}' in c.get("/metrics")[1]
        # every series the shipped alert rules and dashboard name is on a real controller's /metrics
        from tests.unit.test_deploy import named_in_deploy

        text = c.get("/metrics")[1]
        exposed = {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
        exposed |= {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        assert named_in_deploy() - exposed == set()
    finally:
        code, _seconds = c.stop()
    assert code == 0
    taken = list((state.parent / "backups" / "kv-s").glob("*.json"))
    assert len(taken) == 1 and json.loads(taken[0].read_text())["reason"] == "schedule"
    r = dbstate("status", host=engine_host, state=state)
    assert "backups (the newest of each instance):" in r.stdout and "kv-s" in r.stdout and "schedule" in r.stdout
    assert any(rec.get("msg") == "backed up" for rec in c.logs())


def test_a_corrupt_state_database_is_reported_and_run_converges_without_it(
    repo: Path, engine_host: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"SQLite format 3\x00" + b"\x07" * 3000)  # a truncated, damaged file
    c = Controller(repo, engine_host, state, tmp_path / "run.log")
    try:
        wait_for(c.ready, timeout=30)
        wait_for(lambda: running(docker_client, "kv-a-db"), timeout=30)
        docker_client.containers.get("kv-a-db").stop(timeout=1)
        wait_for(lambda: running(docker_client, "kv-a-db"), timeout=20)  # still repairing
        assert 'dbstate_state_database_ok{host="default"} 0.0' in c.get("/metrics")[1]
    finally:
        code, _seconds = c.stop()
    assert code == 0
    (said,) = [r for r in c.logs() if r.get("msg") == "state database unusable: converging without it"]
    assert str(state) in said["error"] and "move it away" in said["error"]
    assert state.read_bytes().startswith(b"SQLite format 3\x00\x07")  # never overwritten


class Receiver:
    """A local HTTP endpoint for Apprise's json:// notifications: what it received, or (hang) never an answer."""

    def __init__(self, hang: bool = False) -> None:
        import http.server
        import threading

        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    outer.release.wait(60)
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def texts(self) -> list[str]:
        return [f"{b.get('title', '')}\n{b.get('message', '')}" for b in self.bodies]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_notifications_say_a_failure_once_across_passes_and_its_recovery_once(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    root = write_tree(
        tmp_path / "notify",
        {
            "net.yaml": network("net-a"),
            "kv.yaml": redis_instance("kv-n", "kv-n-db", image="dbstate-local/redis:later", extra=NO_RESTART),
        },
    )
    receiver = Receiver()
    c = Controller(root, engine_host, tmp_path / "state.db", tmp_path / "run.log", "--notify", receiver.url)
    try:
        wait_for(lambda: any("failed: create DatabaseInstance/kv-n" in t for t in receiver.texts()), timeout=30)

        def failed_passes() -> int:
            return sum(1 for r in c.logs() if r.get("msg") == "pass" and r.get("failed"))

        wait_for(lambda: failed_passes() >= 3, timeout=30, interval=0.5)  # the same failure, seen again and again
        docker_client.images.get("dbstate-local/redis:7.0").tag("dbstate-local/redis", "later")
        wait_for(lambda: any("recovered: create DatabaseInstance/kv-n" in t for t in receiver.texts()), timeout=60)
        wait_for(lambda: running(docker_client, "kv-n-db"), timeout=30)
    finally:
        code, _seconds = c.stop()
        receiver.close()
        docker_client.images.remove("dbstate-local/redis:later", noprune=True)
    assert code == 0
    texts = receiver.texts()
    assert sum("failed: create DatabaseInstance/kv-n" in t for t in texts) == 1, texts
    assert sum("recovered: create DatabaseInstance/kv-n" in t for t in texts) == 1, texts
    assert all(t.startswith("dbstate: ") and "at revision" in t for t in texts)
    assert all(SECRET not in t for t in texts)


def test_a_notifier_that_hangs_does_not_delay_a_repair(
    repo: Path, engine_host: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    receiver = Receiver(hang=True)
    c = Controller(repo, engine_host, tmp_path / "state.db", tmp_path / "run.log", "--notify", receiver.url)
    try:
        wait_for(c.ready, timeout=30)
        wait_for(lambda: running(docker_client, "kv-a-db"), timeout=30)
        for _ in range(2):  # each repair is a notification that hangs
            docker_client.containers.get("kv-a-db").kill()
            t0 = time.monotonic()
            wait_for(lambda: running(docker_client, "kv-a-db"), timeout=15)
            assert time.monotonic() - t0 < 10
        # meanwhile its notification was tried, timed out (5 s) and is retried
        wait_for(lambda: any(r.get("msg") == "notification failed" for r in c.logs()), timeout=30, interval=0.5)
    finally:
        code, _seconds = c.stop()
        receiver.close()
    assert code == 0
    assert receiver.url.split("//")[1] not in (tmp_path / "run.log").read_text()  # never the URL itself
