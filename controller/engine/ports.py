"""The ports the engine talks to: Protocols that adapters implement (the Docker engine, the state store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Runtime(Protocol):
    """What apply needs from a container engine. Every method is idempotent where the engine allows it, retries
    transient errors itself (one depth: the adapter), and raises `core.errors.EngineError` subclasses."""

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None: ...

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None: ...

    def create_container(
        self,
        name: str,
        image: str,
        env: Mapping[str, str],
        command: Sequence[str],
        labels: Mapping[str, str],
        networks: Mapping[str, Sequence[str]],
        volumes: Mapping[str, str],
        ports: Sequence[str],
        restart_policy: str,
    ) -> None: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str, timeout: int) -> None: ...

    def rename(self, name: str, new_name: str) -> None: ...

    def remove_container(self, name: str) -> None: ...

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None: ...

    def disconnect(self, container: str, network: str) -> None: ...


class Store(Protocol):
    """Where apply records what it did."""

    def record_outcome(self, pass_id: int, outcome: Any) -> None: ...
