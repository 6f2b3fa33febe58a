"""The Dockerfile: built here on a locally built base image, run against the private engine with the socket and a git
checkout mounted, it converges the desired state, repairs a drift on its own, reports healthy, and stops cleanly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
import pytest

from devtools.engine import TEST_LABEL
from tests.e2e.helpers import ENV, REPO, network, redis_instance, wait_for
from tests.helpers import SECRET, write_tree

pytestmark = pytest.mark.engine
EXTRA_CAS = Path("/usr/local/share/ca-certificates")


def recipe_hash() -> str:
    h = hashlib.sha256()
    for p in [
        REPO / "Dockerfile",
        REPO / "pyproject.toml",
        *sorted((REPO / "controller").rglob("*.py")),
        *sorted(EXTRA_CAS.rglob("*.crt")),
    ]:
        h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def dbstate_image(engine_host: str, images: dict[str, str]) -> str:
    client = docker.DockerClient(base_url=engine_host, version="auto", timeout=900)
    tag = f"dbstate-test/dbstate:{recipe_hash()}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        with tempfile.TemporaryDirectory(prefix="dbstate-build-") as tmp:
            context = build_context(Path(tmp))
            client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": images["base"]},
                network_mode="host",
                rm=True,
                forcerm=True,
            )
    finally:
        client.close()
    return tag


def build_context(into: Path) -> Path:
    """The repository's build context, plus this machine's extra CA certificates (its egress may intercept TLS)."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, into / name)
    shutil.copytree(REPO / "controller", into / "controller", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / ".ca", into / ".ca")
    for crt in EXTRA_CAS.rglob("*.crt"):
        shutil.copy2(crt, into / ".ca" / crt.name)
    return into


def test_the_image_repairs_drift_and_is_healthy(dbstate_image, docker_client, engine_host, tmp_path):
    repo = write_tree(
        tmp_path / "repo",
        {
            "desired-state/net.yaml": network("net-a"),
            "desired-state/kv.yaml": redis_instance("kv-a", "kv-a-db", extra='  restartPolicy: "no"\n'),
        },
    )
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "desired state"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True)
    socket_path = engine_host.removeprefix("unix://")
    controller = docker_client.containers.run(
        dbstate_image,
        ["run", "--dir", "/repo/desired-state", "--listen", "127.0.0.1:9464", "--log-format", "json", "--resync", "5"],
        name="dbstate-controller-test",
        detach=True,
        network_mode="none",  # it talks to the engine through the socket only
        environment=ENV,
        group_add=[str(os.stat(socket_path).st_gid)],
        volumes={
            socket_path: {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(repo): {"bind": "/repo", "mode": "ro"},
        },
        labels={TEST_LABEL: "1"},
    )
    try:

        def running(name: str) -> bool:
            try:
                return bool(docker_client.containers.get(name).status == "running")
            except docker.errors.NotFound:
                return False

        wait_for(lambda: running("kv-a-db"), timeout=60)
        docker_client.containers.get("kv-a-db").stop(timeout=1)
        wait_for(lambda: running("kv-a-db"), timeout=30)

        def health() -> str:
            controller.reload()
            return str(controller.attrs["State"].get("Health", {}).get("Status"))

        wait_for(lambda: health() == "healthy", timeout=60)
        assert controller.attrs["Config"]["User"] == "10001:10001"
        # the web view's templates are in the installed package, not only in a checkout
        page = (
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/', timeout=5).read().decode())"
        )
        code, out = controller.exec_run(["python3", "-c", page])
        assert code == 0 and "<h1>Overview</h1>" in out.decode() and 'data-key="DatabaseInstance/kv-a"' in out.decode()
        controller.stop(timeout=15)
        controller.reload()
        assert controller.attrs["State"]["ExitCode"] == 0
        logs = controller.logs().decode()
        assert '"msg": "pass"' in logs and SECRET not in logs
    finally:
        controller.remove(force=True, v=True)  # v: its anonymous state volume too
