"""Networks and attachments: create a network, connect a container with its aliases, disconnect it; a retry whose
first attempt was done already counts as done."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.adapters.docker.client import DockerClient
from controller.adapters.docker.errors import says


class Networks(DockerClient):
    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        self.mutate(
            f"creating network {name}",
            lambda: self.api.create_network(
                name, driver=driver, internal=internal, labels=dict(labels), check_duplicate=True
            ),
            lambda e: says(e, 409, "already exists"),
        )

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        if reconnect:
            self.disconnect(container, network)
        self.mutate(
            f"connecting {container} to {network}",
            lambda: self.api.connect_container_to_network(container, network, aliases=list(aliases) or None),
            lambda e: says(e, 403, "already exists") or says(e, 409, "already exists"),
        )

    def disconnect(self, container: str, network: str) -> None:
        self.mutate(
            f"disconnecting {container} from {network}",
            lambda: self.api.disconnect_container_from_network(container, network),
            lambda e: (
                says(e, 500, "is not connected") or says(e, 404, "is not connected") or says(e, 403, "is not connected")
            ),
        )

    def attachments(self, container: str) -> list[tuple[str, tuple[str, ...]]]:
        """The networks `container` is on, each with the aliases given to it (not the short id Docker adds)."""
        info: dict[str, Any] = self.call(f"inspecting {container}", lambda: self.api.inspect_container(container))
        short = str(info.get("Id", ""))[:12]
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        return [(n, tuple(a for a in (v.get("Aliases") or []) if a != short)) for n, v in sorted(nets.items())]

    def remove_network(self, name: str) -> None:
        self.mutate(
            f"removing network {name}",
            lambda: self.api.remove_network(name),
            lambda e: says(e, 404, "not found", "no such network"),
        )
