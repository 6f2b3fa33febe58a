"""The mutating half of the Docker adapter: implements `engine.ports.Runtime` over containers, networks, volumes,
dbstate's markers and the databases' tools (exec), on top of the observing half."""

from __future__ import annotations

from controller.adapters.docker.containers import Containers
from controller.adapters.docker.exec import Exec
from controller.adapters.docker.markers import Markers
from controller.adapters.docker.observe import DockerEngine
from controller.adapters.docker.volumes import Volumes


class DockerRuntime(Containers, Volumes, Markers, Exec, DockerEngine):
    """Each change is retried on transient errors within the retry budget and is idempotent: a retry whose first
    attempt did reach the engine counts as done. Fenced by the engine lease when one is held (`DockerClient.fence`)."""
