"""dbstate's own markers on the engine: marker volumes (the data facts of adapters/facts.py) and the engine lease's
epoch containers of an empty image (adapters/lease.py). The lease's calls are not fenced: they decide the fence."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

import docker.errors

from controller.adapters.docker.client import DockerClient
from controller.adapters.docker.errors import says
from controller.core import errors


class Markers(DockerClient):
    def marker_volumes(self, label: str) -> dict[str, dict[str, str]]:
        """dbstate's own marker volumes carrying `label`: name -> labels."""
        raw = self.call("listing markers", lambda: self.api.volumes(filters={"label": label})).get("Volumes") or []
        return {str(v["Name"]): dict(v.get("Labels") or {}) for v in raw}

    def create_marker_volume(self, name: str, labels: Mapping[str, str]) -> None:
        """One of dbstate's own markers; fenced like every change."""
        self.mutate(
            f"creating marker {name}", lambda: self.api.create_volume(name, driver="local", labels=dict(labels))
        )

    def remove_marker_volume(self, name: str) -> None:
        self.mutate(
            f"removing marker {name}",
            lambda: self.api.remove_volume(name),
            lambda e: isinstance(e, docker.errors.NotFound),
        )

    def marker_containers(self, label: str, name_prefix: str) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
        """Every container (running or not) carrying `label` whose name starts with `name_prefix`: (id, names,
        labels)."""
        raw: list[dict[str, Any]] = self.call(
            "reading the engine lease",
            lambda: self.api.containers(all=True, filters={"label": label, "name": name_prefix}),
        )
        return [(str(c["Id"]), tuple(c.get("Names") or ()), dict(c.get("Labels") or {})) for c in raw]

    def ensure_empty_image(self, image: str) -> None:
        """`image` (REPO:TAG), made from an empty archive when the engine lacks it: a container of it holds nothing
        and never runs, and needs no registry."""
        try:
            self.call(f"checking {image}", lambda: self.api.inspect_image(image))  # type: ignore[no-untyped-call]
        except errors.EnginePermanent:
            empty = io.BytesIO()
            tarfile.open(fileobj=empty, mode="w").close()
            repo, tag = image.split(":")
            self.call(
                f"making {image}",
                lambda: self.api.import_image_from_data(empty.getvalue(), repository=repo, tag=tag),
            )

    def create_marker_container(self, name: str, image: str, command: Sequence[str], labels: Mapping[str, str]) -> bool:
        """A container that is only a name and labels (no network, never started); False when `name` is taken."""

        def create() -> bool:
            try:
                self.api.create_container(
                    image,
                    command=list(command),
                    name=name,
                    labels=dict(labels),
                    network_disabled=True,
                    host_config=self.api.create_host_config(network_mode="none"),
                )
            except docker.errors.APIError as e:
                if says(e, 409, "already in use", "conflict"):
                    return False
                raise
            return True

        return bool(self.call(f"creating {name}", create))

    def remove_marker_container(self, name: str) -> None:
        """Remove one; one that is gone already, or an engine that does not answer, is left to the next time."""
        with contextlib.suppress(errors.EngineError):
            self.call(f"removing {name}", lambda: self.api.remove_container(name))

    def remove_unfenced_volume(self, name: str) -> None:
        """A marker volume of an earlier release, removed outside the fence (the lease's own clean-up)."""
        with contextlib.suppress(errors.EngineError):
            self.call(f"removing {name}", lambda: self.api.remove_volume(name))
