"""Valkey, the fourth engine, is one module (core/databases/valkey.py): declared as `engine: valkey` on a stand-in image
of Debian trixie's valkey-server, it is applied, probed directly and through its own client (its own version, not the
Redis 7.2.4 it also reports), backed up, verified with valkey-check-rdb and a throw-away server, and restored with
its marker key back; a compose-made Valkey whose password is on its command line is imported in place (the password
moved to env) and its first plan changes nothing. No password in any output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from controller.adapters import desired
from controller.adapters.docker import DockerRuntime
from controller.adapters.probes import probe, viaexec
from controller.adapters.shell import DockerShell
from controller.core.health import ProbeTarget
from devtools.engine import TEST_LABEL
from tests.e2e.helpers import dbstate, network, volume, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine

PW = "vk-" + SECRET
ENV = {"VK_PASSWORD": PW}
IMAGE = "dbstate-local/valkey:8.1"
VALKEY = f"""apiVersion: dbstate.io/v1
kind: DatabaseInstance
metadata: {{name: vk, labels: {{dbstate-test: "1"}}}}
spec:
  engine: valkey
  version: "8"
  image: {IMAGE}
  containerName: vk-db
  networks: [{{name: vk-net, aliases: [vk]}}]
  volumes: [{{source: vk-data, target: /data}}]
  env: {{VALKEY_PASSWORD: "${{VK_PASSWORD}}"}}
  command: ["sh", "-c", "exec valkey-server --requirepass \\"$$VALKEY_PASSWORD\\""]
  auth: {{method: password, password: "${{VK_PASSWORD}}"}}
"""


def run(*args: str, host: str, state: Path) -> Any:
    return dbstate(*args, host=host, state=state, env=ENV, secrets=(PW,))


def cli(client: docker.DockerClient, container: str, *command: str) -> str:
    code, out = client.containers.get(container).exec_run(
        ["valkey-cli", "--no-auth-warning", *command], environment={"REDISCLI_AUTH": PW}
    )
    assert code == 0, out.decode()
    return str(out.decode().strip())


def test_valkey_is_applied_probed_backed_up_verified_and_restored(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    root = write_tree(
        tmp_path / "ds", {"net.yaml": network("vk-net"), "vol.yaml": volume("vk-data"), "vk.yaml": VALKEY}
    )
    state = tmp_path / "state.db"
    r = run("apply", "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: cli(docker_client, "vk-db", "PING") == "PONG", timeout=30)
    cli(docker_client, "vk-db", "SET", "marker", "before")

    # probed directly (the wire protocol) and through its own client: its own version, no weakness
    inst = desired.load(root, environ=ENV).state.instances[0]
    address = docker_client.containers.get("vk-db").attrs["NetworkSettings"]["Networks"]["vk-net"]["IPAddress"]
    direct = probe(inst, address, 2.0)
    runtime = DockerRuntime(engine_host)
    try:
        through = viaexec.probe(DockerShell(runtime), "vk-db", ProbeTarget.of(inst), 5.0)
    finally:
        runtime.close()
    for found in (direct, through):
        assert found.reachable and found.auth_weak == (), found
        assert found.version is not None and found.version.startswith("8."), found  # not redis_version's 7.2.4
        assert PW not in repr(found)
    p = run("plan", "--dir", str(root), "--probe", "--output", "json", host=engine_host, state=state)
    assert p.code == 0 and json.loads(p.stdout)["findings"] == [], p.stdout

    # backed up and verified with valkey-check-rdb and a throw-away valkey-server of the same image
    r = run("backup", "vk", "--verify", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0 and "verified" in r.stdout, r.stdout + r.stderr
    ident = r.stdout.split()[0]
    manifest = json.loads(next((state.parent / "backups" / "vk").glob(f"{ident}.json")).read_text())
    assert manifest["engine"] == "valkey" and manifest["format"] == "rdb.gz" and manifest["counts"] == {"keys": 1}

    # restored: the file of the stopped server replaced, the marker back
    cli(docker_client, "vk-db", "SET", "marker", "after")
    r = run("restore", "vk", "--from", ident, "--yes", "--dir", str(root), host=engine_host, state=state)
    assert r.code == 0, r.stdout + r.stderr
    wait_for(lambda: cli(docker_client, "vk-db", "PING") == "PONG", timeout=30)
    assert cli(docker_client, "vk-db", "GET", "marker") == "before"


COMPOSE = f"""services:
  cache:
    image: {IMAGE}
    container_name: vkc-cache-1
    command: ["valkey-server", "--requirepass", "{PW}"]
    volumes: ["cache_data:/data"]
    networks: [vkc-net]
    labels: {{"{TEST_LABEL}": "1"}}
volumes:
  cache_data: {{labels: {{"{TEST_LABEL}": "1"}}}}
networks:
  vkc-net: {{labels: {{"{TEST_LABEL}": "1"}}}}
"""


def test_a_compose_made_valkey_is_imported_in_place_and_its_first_plan_changes_nothing(
    tmp_path: Path, engine_host: str, docker_client: docker.DockerClient
) -> None:
    project = tmp_path / "vkc"
    project.mkdir()
    (project / "compose.yml").write_text(COMPOSE)
    env = {**os.environ, "DOCKER_HOST": engine_host}
    compose = ["docker-compose", "-p", "vkc", "-f", str(project / "compose.yml")]
    up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        made = docker_client.containers.get("vkc-cache-1")
        wait_for(lambda: made.exec_run(["valkey-cli", "-a", PW, "--no-auth-warning", "PING"])[1].strip() == b"PONG")
        out, env_file, state = tmp_path / "ds", tmp_path / "ws" / ".env", tmp_path / "state.db"
        r = run("import", "--out", str(out), "--env-out", str(env_file), host=engine_host, state=state)
        assert r.code == 0 and "1 databases recorded as adopted" in r.stdout, r.stdout + r.stderr
        text = (out / "vkc.yaml").read_text()
        assert "engine: valkey" in text and PW not in text and "VALKEY_PASSWORD" in text  # moved off the command line
        p = dbstate(
            "plan",
            "--dir",
            str(out),
            "--env-file",
            str(env_file),
            "--probe",
            "--output",
            "json",
            host=engine_host,
            state=state,
            secrets=(PW,),
        )
        doc = json.loads(p.stdout)
        assert doc["changes"] == [], doc["changes"]
        assert {f["type"] for f in doc["findings"]} == {"co-managed"}, doc["findings"]
        assert docker_client.containers.get("vkc-cache-1").id == made.id
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, capture_output=True, timeout=300)
