"""Volumes: created with an identity of their own (a random `io.dbstate.volume-id` label), and that identity read
back; dbstate never removes a volume."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from controller.adapters.docker.client import DockerClient
from controller.core import errors, labels
from controller.core.labels import VOLUME_ID


class Volumes(DockerClient):
    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        """With a random `io.dbstate.volume-id` besides `labels`: the volume's identity is its labels, and this one must
        never equal a volume made again later under the same name."""
        tagged = {**labels, VOLUME_ID: uuid.uuid4().hex}
        self.mutate(f"creating volume {name}", lambda: self.api.create_volume(name, driver=driver, labels=tagged))

    def volume_identity(self, name: str) -> str | None:
        try:
            found = self.call(f"inspecting volume {name}", lambda: self.api.inspect_volume(name))
        except errors.EngineNotFound:
            return None
        return labels.volume_identity(found.get("Labels") or {})

    def volume_mountpoint(self, name: str) -> str | None:
        """Where a `local` volume's data lies on the engine's host; None for another driver or a missing volume."""
        try:
            found = self.call(f"inspecting volume {name}", lambda: self.api.inspect_volume(name))
        except errors.EngineNotFound:
            return None
        point = found.get("Mountpoint")
        return str(point) if found.get("Driver") == "local" and point else None
