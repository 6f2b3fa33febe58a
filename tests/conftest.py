"""The real-engine test harness: one private dockerd per test run, stand-in database images, cleanup by label.

The suite starts its own engine (own data root, exec root, socket, no default bridge, own address pool) unless
DBSTATE_TEST_DOCKER_HOST names one. If the engine cannot start, every test that needs it errors: nothing skips.
Everything a test creates carries `io.dbstate.test` or dbstate's own `io.dbstate.managed` label and is removed after
each test; nothing else on the engine is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from devtools import engine as devengine


@pytest.fixture(scope="session")
def engine_host() -> Iterator[str]:
    host = os.environ.get("DBSTATE_TEST_DOCKER_HOST")
    started = None
    if not host:
        started = devengine.start("test")
        host = started.host
    client = docker.DockerClient(base_url=host, version="auto", timeout=300)
    try:
        devengine.cleanup(client)  # leftovers of a run that was killed
        yield host
        devengine.cleanup(client)
    finally:
        client.close()
        if started is not None:
            started.stop()


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
