"""The real-engine test harness: one private dockerd per test run, stand-in database images, cleanup by label.

The suite starts its own engine (own data root, exec root, socket, no default bridge, own address pool) unless
DBSTATE_TEST_DOCKER_HOST names one. If the engine cannot start, every test that needs it errors: nothing skips.
Everything a test creates carries `dbstate-test` or dbstate's own `io.dbstate.managed` label and is removed after
each test; nothing else on the engine is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from devtools import engine as devengine

# The consumers the tests make by hand (run_plain, labelled dbstate-test) are in the controller's scope, as an operator
# would allow a compose project; tests/e2e/test_plan.py shows the narrow default with this unset.
os.environ.setdefault("DBSTATE_ALLOW_LABELS", f"{devengine.TEST_LABEL}=1")


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
def docker_client(engine_host: str, images: dict[str, str]) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=engine_host, version="auto", timeout=120)
    try:
        yield client
    finally:
        devengine.cleanup(client)
        client.close()
