"""An env file encrypted with SOPS (age, a key the test makes) drives a real apply: the server gets its password, and
the plaintext appears in no file dbstate writes, no output and no process's command line; without the key, one clear
error and nothing applied."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import docker
import pytest

from tests.e2e.helpers import REPO
from tests.helpers import network, redis_instance, write_tree

pytestmark = pytest.mark.engine

PLAIN = "sops-plaintext-7f3a9c"  # the password, only ever inside the encrypted file and the server's own env
SOPS = str(REPO / ".venv" / "bin" / "sops")


def encrypted(tmp: Path) -> tuple[Path, Path]:
    """An age key and an env file encrypted to it; the plaintext goes to sops on its stdin, never into a file."""
    key = tmp / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout
    out = tmp / "secrets.sops.env"
    r = subprocess.run(
        [
            SOPS,
            "--encrypt",
            "--age",
            recipient.strip(),
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "/dev/stdin",
        ],
        input=f"TEST_REDIS_PASSWORD={PLAIN}\n",
        capture_output=True,
        text=True,
        check=True,
    )
    out.write_text(r.stdout)
    assert PLAIN not in out.read_text()
    return key, out


def dbstate(*args: str, env: dict[str, str], watch: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command; with `watch`, every process's command line is read while it runs."""
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            assert watch is not None
                            watch.append(f.read().decode(errors="replace"))
                    except OSError:
                        pass
            stop.wait(0.02)

    t = threading.Thread(target=scan, daemon=True)
    if watch is not None:
        t.start()
    try:
        return subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "controller.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        if watch is not None:
            t.join()


def test_a_sops_env_file_drives_a_real_apply_and_its_plaintext_is_nowhere(
    tmp_path: Path, docker_client: docker.DockerClient, engine_host: str
) -> None:
    key, secrets = encrypted(tmp_path)
    root = write_tree(
        tmp_path / "ds",
        {"net.yaml": network("sops-net"), "kv.yaml": redis_instance("kv-sops", "kv-sops-db", "[{name: sops-net}]")},
    )
    state = tmp_path / "state"
    env = {
        "PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin",
        "DOCKER_HOST": engine_host,
        "DBSTATE_STATE": str(state / "state.db"),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "DBSTATE_MONITORING": os.environ.get("DBSTATE_MONITORING", "on"),  # the suite's (tests/conftest.py)
    }
    args = ("--dir", str(root), "--env-file", str(secrets), "--backup-dir", str(state / "backups"))
    # without the key: one clear error, nothing applied
    r = dbstate("apply", "--yes", *args, env=env)
    assert r.returncode == 1 and "encrypted with SOPS and could not be decrypted" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and not docker_client.containers.list(all=True, filters={"name": "kv-sops-db"})
    # with it: applied; the server has the password
    seen: list[str] = []
    r = dbstate("apply", "--yes", *args, env=env | {"SOPS_AGE_KEY_FILE": str(key)}, watch=seen)
    assert r.returncode == 0, r.stdout + r.stderr
    c = docker_client.containers.get("kv-sops-db")
    assert f"REDIS_PASSWORD={PLAIN}" in c.attrs["Config"]["Env"]
    code, out = c.exec_run(["redis-cli", "--no-auth-warning", "ping"], environment={"REDISCLI_AUTH": PLAIN})
    assert code == 0 and b"PONG" in out
    # nowhere else: not in the output, not on a command line, not in any file dbstate wrote
    assert PLAIN not in r.stdout + r.stderr
    # (the test's Redis itself takes it as `--requirepass`, as the declaration asks: the server's, not dbstate's)
    assert seen and not [line for line in seen if PLAIN in line and not line.startswith("redis-server\x00")]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != key]
    assert written and not [p for p in written if PLAIN.encode() in p.read_bytes()]
    r = dbstate("plan", *args, "--output", "json", env=env | {"SOPS_AGE_KEY_FILE": str(key)})
    assert r.returncode == 0 and PLAIN not in r.stdout, r.stdout + r.stderr
