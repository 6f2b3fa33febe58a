"""The real-engine test harness: one private dockerd per test run, stand-in database images, cleanup by label.

The suite starts its own engine (own data root, exec root, socket, no default bridge, own address pool) unless
DBSTATE_TEST_DOCKER_HOST names one. If the engine cannot start, every test that needs it errors: nothing skips.
Everything a test creates carries `dbstate-test` or dbstate's own `io.dbstate.managed` label and is removed after
each test; nothing else on the engine is touched. The exception: a volume without any label that appears during a
test (Docker makes one when a container mounts a name no volume has) is removed after it too, and its name and the
test are appended to LEAKS, so that the test that makes it can be found. On the suite's own engine only, unlabelled
volumes left by an earlier run are removed at the start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from devtools import engine as devengine

# The consumers the tests make by hand (run_plain, labelled dbstate-test) are in the controller's scope, as an operator
# would allow a compose project; tests/e2e/test_plan.py shows the narrow default with this unset.
os.environ.setdefault("DBSTATE_ALLOW_LABELS", f"{devengine.TEST_LABEL}=1")
# The tests of other capabilities run their databases without the exporter each would get by default: the site-wide
# default a site whose exporters are made elsewhere sets. tests/e2e/test_monitoring.py removes it (the real default).
os.environ.setdefault("DBSTATE_MONITORING", "off")
LEAKS = Path(tempfile.gettempdir()) / "dbstate-test-unlabelled-volumes.log"


def _unlabelled_volumes(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list() if not v.attrs.get("Labels")}


def _remove_volumes(client: docker.DockerClient, names: set[str]) -> None:
    for name in names:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.volumes.get(name).remove(force=True)


class EngineHandle:
    """The session's engine; a test may stop and start it again (only one that the suite started itself)."""

    def __init__(self) -> None:
        self.external = os.environ.get("DBSTATE_TEST_DOCKER_HOST")
        self.engine: devengine.Engine | None = None
        self.host = self.external or ""
        if not self.external:
            self.engine = devengine.start("test")
            self.host = self.engine.host

    def stop(self) -> None:
        if self.engine is None:
            raise RuntimeError("cannot stop an engine the suite did not start (DBSTATE_TEST_DOCKER_HOST)")
        self.engine.stop()

    def start(self) -> None:
        if self.engine is None:
            raise RuntimeError("cannot start an engine the suite did not start")
        self.engine = devengine.start("test")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHandle]:
    handle = EngineHandle()
    client = docker.DockerClient(base_url=handle.host, version="auto", timeout=300)
    try:
        devengine.cleanup(client)  # leftovers of a run that was killed
        if handle.engine is not None:  # the suite's own engine: nothing unlabelled there is anybody else's
            _remove_volumes(client, _unlabelled_volumes(client))
        yield handle
        client.close()
        client = docker.DockerClient(base_url=handle.host, version="auto", timeout=300)
        devengine.cleanup(client)
    finally:
        client.close()
        handle.close()


@pytest.fixture(scope="session")
def engine_host(engine: EngineHandle) -> str:
    return engine.host


@pytest.fixture(scope="session")
def images(engine_host: str) -> dict[str, str]:
    client = docker.DockerClient(base_url=engine_host, version="auto", timeout=600)
    try:
        refs = devengine.ensure_images(client)
        refs["base"] = devengine.ensure_base(client)
        return refs
    finally:
        client.close()


@pytest.fixture
def docker_client(
    engine_host: str, images: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=engine_host, version="auto", timeout=120)
    before = _unlabelled_volumes(client)
    try:
        yield client
    finally:
        devengine.cleanup(client)
        leaked = _unlabelled_volumes(client) - before
        if leaked:
            _remove_volumes(client, leaked)
            with LEAKS.open("a") as f:
                f.write(f"{request.node.nodeid}: {', '.join(sorted(leaked))}\n")
        client.close()
