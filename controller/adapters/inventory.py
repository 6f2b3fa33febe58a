"""What `dbstate import` needs from an engine beyond the observed state: each container's command and restart policy,
and its image's own env and command (so that only what the container adds is declared); on a swarm manager, each
service's too (`SwarmRuntime.described`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.adapters.docker import DockerEngine, SwarmRuntime
from controller.core import live
from controller.core.importer import Found, SwarmFacts


def _env(pairs: list[str] | None) -> dict[str, str]:
    return dict(p.split("=", 1) for p in pairs or [] if "=" in p)


# a service's restart condition as a container's policy (dbstate's default, unless-stopped, is Swarm's `any`)
RESTART = {"none": "no", "on-failure": "on-failure", "any": ""}


def inventory(engine: DockerEngine) -> tuple[list[Found], live.LiveState]:
    observed = engine.observe(inspect_all=True)
    images: dict[str, dict[str, Any]] = {}
    found = []
    for c in observed.containers:
        if c.service is not None and isinstance(engine, SwarmRuntime):
            service = _service(engine, c, images)
            if service is not None:
                found.append(service)
            continue
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


def _service(engine: SwarmRuntime, c: live.Container, images: dict[str, dict[str, Any]]) -> Found | None:
    facts = engine.described(c.name)
    if facts is None:
        return None  # removed meanwhile
    if c.image not in images:
        images[c.image] = engine.inspected("image", c.image)  # {} when the manager does not have it
    image_config = images[c.image].get("Config") or {}
    return Found(
        container=dataclasses.replace(c, env=facts.env, command=facts.args),
        command=facts.args,
        image_env=_env(image_config.get("Env")),
        image_command=tuple(image_config.get("Cmd") or ()),
        restart=RESTART.get(facts.restart, ""),
        node=facts.node,
        swarm=SwarmFacts(facts.ports, facts.unlabelled, facts.unread),
    )
