"""Which Docker engine each declared resource lives on (`kind: Host`, `spec.host`), and the part of the desired state
that one engine's reconciler works on. Without any Host document everything is on one engine, named `default`."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from controller.core import errors, spec

DEFAULT = "default"  # the engine of --docker-host when no Host document is declared

Placed = spec.DatabaseInstance | spec.Network | spec.Volume | spec.Consumer
P = TypeVar("P", spec.DatabaseInstance, spec.Network, spec.Volume, spec.Consumer)


def host_of(resource: Placed, hosts: tuple[spec.Host, ...]) -> str:
    """Its `spec.host`; else the only Host declared; else `default` (several Hosts and no `spec.host` is an error
    of the desired state, see core/checks.py, and such a resource never reaches a reconciler)."""
    if resource.spec.host is not None:
        return resource.spec.host
    if len(hosts) == 1:
        return hosts[0].metadata.name
    return DEFAULT


def names(state: spec.DesiredState) -> tuple[str, ...]:
    """The engines of this desired state, in name order."""
    return tuple(h.metadata.name for h in state.hosts) or (DEFAULT,)


def declared(state: spec.DesiredState, host: str) -> spec.Host | None:
    return next((h for h in state.hosts if h.metadata.name == host), None)


def where(state: spec.DesiredState) -> dict[str, str]:
    """`Kind/name` -> the engine it lives on, for every resource that loaded."""
    out: dict[str, str] = {}
    for group in (state.networks, state.volumes, state.instances, state.consumers):
        for r in group:
            out[f"{r.kind}/{r.metadata.name}"] = host_of(r, state.hosts)
    return out


def only(state: spec.DesiredState, host: str) -> spec.DesiredState:
    """The resources of one engine. What is held back stays held back on every engine: a broken declaration's host
    is not known, so no engine may take its resources for orphans."""

    def mine(group: tuple[P, ...]) -> tuple[P, ...]:
        return tuple(r for r in group if host_of(r, state.hosts) == host)

    return dataclasses.replace(
        state,
        instances=mine(state.instances),
        networks=mine(state.networks),
        volumes=mine(state.volumes),
        consumers=mine(state.consumers),
    )


def slice_loaded(loaded: spec.Loaded, host: str) -> spec.Loaded:
    """`Loaded` for one engine: its resources, the diagnostics of its resources and of what has no known engine
    (a file that cannot be parsed, a broken resource), and every secret (the scrubbers know them all)."""
    engines = names(loaded.state)
    if host not in engines:
        if host == DEFAULT:
            raise errors.DesiredStateError(
                f"Host documents were declared ({', '.join(engines)}) while this process works on the one engine of "
                "--docker-host: nothing is changed; restart it to reconcile each Host"
            )
        raise errors.DesiredStateError(
            f"Host {host} is no longer declared, or its declaration has errors: nothing is changed on it (restart "
            "to stop reconciling it)"
        )
    if len(engines) == 1:
        return loaded
    placed = where(loaded.state)
    diagnostics = tuple(d for d in loaded.diagnostics if placed.get(f"{d.kind}/{d.name}", host) == host)
    return dataclasses.replace(loaded, state=only(loaded.state, host), diagnostics=diagnostics)
