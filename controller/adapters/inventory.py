"""What `dbstate import` needs from an engine beyond the observed state: each container's command and restart policy,
and its image's own env and command (so that only what the container adds is declared)."""

from __future__ import annotations

from typing import Any

from controller.adapters.docker import DockerEngine
from controller.core import live
from controller.core.importer import Found


def _env(pairs: list[str] | None) -> dict[str, str]:
    return dict(p.split("=", 1) for p in pairs or [] if "=" in p)


def inventory(engine: DockerEngine) -> tuple[list[Found], live.LiveState]:
    observed = engine.observe(inspect_all=True)
    images: dict[str, dict[str, Any]] = {}
    found = []
    for c in observed.containers:
        detail = engine.inspected("container", c.id)
        if not detail:
            continue  # removed meanwhile
        image_id = str(detail.get("Image", ""))
        if image_id not in images:
            images[image_id] = engine.inspected("image", image_id)
        image_config = images[image_id].get("Config") or {}
        config = detail.get("Config") or {}
        found.append(
            Found(
                container=c,
                command=tuple(config.get("Cmd") or ()),
                image_env=_env(image_config.get("Env")),
                image_command=tuple(image_config.get("Cmd") or ()),
                restart=str(((detail.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or ""),
            )
        )
    return found, observed
