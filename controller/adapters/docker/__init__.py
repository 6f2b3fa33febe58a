"""A typed wrapper over docker-py's low-level API (`APIClient`, on purpose: the high-level `containers.list()` inspects
every container, one API call each). One module per concern:

    client.py      the connection (TLS, ssh), reads (`call`) and fenced, retried changes (`mutate`)
    errors.py      docker-py's exceptions become `core.errors` here, once, raised `from` the original
    observe.py     DockerEngine: the engine observed into a `live.LiveState` (the Observer port)
    containers.py  networks.py  volumes.py  markers.py  exec.py: the changes, one kind each
    runtime.py     DockerRuntime: all of them (the Runtime port); exec.py is the public exec API of adapters/shell.py
    swarm.py       SwarmRuntime: the same ports over a Swarm manager's services (a Host with mode: swarm)
    events.py      the event stream that wakes the controller

Nothing outside this package imports docker-py's client or its exceptions."""

from __future__ import annotations

from controller.adapters.docker.client import DEFAULT_HOST, DockerClient, TLSFiles, resolve_host
from controller.adapters.docker.errors import API_VERSION, translate
from controller.adapters.docker.events import EVENT_ACTIONS, follow_events, trigger_of
from controller.adapters.docker.observe import DockerEngine
from controller.adapters.docker.runtime import DockerRuntime
from controller.adapters.docker.swarm import SwarmRuntime

__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "EVENT_ACTIONS",
    "DockerClient",
    "DockerEngine",
    "DockerRuntime",
    "SwarmRuntime",
    "TLSFiles",
    "follow_events",
    "resolve_host",
    "translate",
    "trigger_of",
]
