"""The observing half: one snapshot of the engine (`live.LiveState`) at the cost of one call for its version, one list
per kind, and one inspect per declared container whose network aliases or environment the diff needs (the list
endpoint reports aliases as null). Inspects run concurrently and are skipped when every endpoint of the container is
already in the alias cache: Docker cannot change an endpoint's aliases in place, so an EndpointID always has the
aliases it was created with."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller.adapters.docker.client import DockerClient
from controller.core import errors, labels, live
from controller.core.labels import ADOPTION, HELPER, LEASE, MARKER_PREFIXES, SEEN


class DockerEngine(DockerClient):
    """The Docker engine as dbstate sees it (implements `engine.ports.Observer`). Observation is thread-safe."""

    def observe(self, inspect: Collection[str] = (), *, inspect_all: bool = False) -> live.LiveState:
        """A snapshot of every container, network and volume; `inspect` names the containers whose aliases and
        environment the diff needs (the declared ones); `inspect_all` inspects every container (audit)."""
        engine = self.info()
        raw_containers = [
            c
            for c in self.call("listing containers", lambda: self.api.containers(all=True))
            if not (_name(c).startswith(MARKER_PREFIXES) and {LEASE, HELPER} & set(c.get("Labels") or {}))
        ]
        raw_networks = self.call("listing networks", self.api.networks)
        wanted = set(inspect)
        details = self._inspect_many(
            [c for c in raw_containers if inspect_all or _name(c) in wanted], force=inspect_all
        )
        containers = tuple(_container(c, details.get(c["Id"]), self._aliases) for c in raw_containers)
        with self._lock:
            endpoints = {
                n.get("EndpointID")
                for c in raw_containers
                for n in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
            }
            current = {e: a for e, a in self._aliases.items() if e in endpoints}
            changed = current != self.current_aliases
            self.current_aliases = current
        if changed and self.save_aliases is not None:
            self.save_aliases(current)
        networks = tuple(
            live.Network(n["Id"], n["Name"], n.get("Driver") or "", bool(n.get("Internal")), n.get("Labels") or {})
            for n in raw_networks
        )
        return live.LiveState(engine, containers, networks, self.volumes())

    def is_swarm_manager(self) -> bool:
        """Whether this engine manages a swarm (its services are what runs, not only its containers)."""
        found = self.call("reading the engine's swarm", self.api.info)
        swarm = found.get("Swarm") or {}
        return bool(swarm.get("ControlAvailable")) and swarm.get("LocalNodeState") == "active"

    def volumes(self) -> tuple[live.Volume, ...]:
        """The engine's volumes, without dbstate's marker volumes."""
        raw = self.call("listing volumes", self.api.volumes).get("Volumes") or []
        return tuple(
            live.Volume(v["Name"], v.get("Driver") or "", v.get("Labels") or {})
            for v in raw
            if not (str(v["Name"]).startswith(MARKER_PREFIXES) and {SEEN, ADOPTION} & set(v.get("Labels") or {}))
        )

    def inspected(self, what: str, ident: str) -> dict[str, Any]:
        """The engine's own description of a container or an image (`what`), as it gives it; {} when it has none."""
        call = self.api.inspect_container if what == "container" else self.api.inspect_image
        try:
            found: dict[str, Any] = self.call(f"inspecting a {what}", lambda: call(ident))
        except errors.EnginePermanent:
            return {}
        return found

    def _inspect_many(self, raw: list[dict[str, Any]], force: bool = False) -> dict[str, dict[str, Any]]:
        todo = [c for c in raw if force or not self._endpoints_known(c) or _wants_env(c)]
        if not todo:
            return {}
        if len(todo) == 1:
            results = [self._inspect(todo[0]["Id"])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dbstate-inspect")
            results = list(self._pool.map(self._inspect, [c["Id"] for c in todo]))
        out = {}
        for r in results:
            if r is None:
                continue  # removed between the list and the inspect: the next pass sees it gone
            out[r["Id"]] = r
            with self._lock:
                for net in ((r.get("NetworkSettings") or {}).get("Networks") or {}).values():
                    if net.get("EndpointID"):
                        self._aliases[net["EndpointID"]] = _clean_aliases(net.get("Aliases"), r["Id"])
        return out

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            detail: dict[str, Any] = self.call(
                "inspecting a container", lambda: self.api.inspect_container(container_id)
            )
            return detail
        except errors.EnginePermanent:
            return None

    def _endpoints_known(self, c: Mapping[str, Any]) -> bool:
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
        with self._lock:
            # A stopped container has no endpoint: its configured aliases are only in the inspect.
            return all(n.get("EndpointID") and n["EndpointID"] in self._aliases for n in nets)


def _wants_env(c: Mapping[str, Any]) -> bool:
    """Containers dbstate does not manage (the consumers) may change their environment at any time."""
    return (c.get("Labels") or {}).get(labels.MANAGED) != "true"


def _name(c: Mapping[str, Any]) -> str:
    names = c.get("Names") or ["/" + c["Id"][:12]]
    return str(names[0]).lstrip("/")


def _clean_aliases(aliases: list[str] | None, container_id: str) -> tuple[str, ...]:
    """Docker adds the short container ID as an alias on user networks; it is not one anybody declared."""
    return tuple(a for a in (aliases or []) if a != container_id[:12])


def _health(status: str) -> str | None:
    for h in ("unhealthy", "healthy", "health: starting"):
        if f"({h})" in status:
            return h.replace("health: ", "")
    return None


def _container(
    c: Mapping[str, Any], detail: Mapping[str, Any] | None, aliases: Mapping[str, tuple[str, ...]]
) -> live.Container:
    inspected = ((detail or {}).get("NetworkSettings") or {}).get("Networks") or {}
    nets = []
    for net_name, n in sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        if net_name in inspected:
            known = _clean_aliases(inspected[net_name].get("Aliases"), c["Id"])
        else:
            known = aliases.get(n.get("EndpointID") or "", ())
        nets.append(live.Attachment(net_name, known, n.get("IPAddress") or None))
    mounts = tuple(
        live.Mount(
            m.get("Type", ""), m.get("Name") or m.get("Source") or "", m.get("Destination", ""), m.get("RW", True)
        )
        for m in c.get("Mounts") or []
    )
    ports = tuple(
        live.Port(int(p["PrivatePort"]), p.get("Type", "tcp"), p.get("IP"), p.get("PublicPort"))
        for p in c.get("Ports") or []
        if "PrivatePort" in p
    )
    env, command = None, None
    if detail is not None:
        env = {}
        for item in (detail.get("Config") or {}).get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        command = tuple(str(a) for a in (detail.get("Config") or {}).get("Cmd") or ())
    return live.Container(
        id=c["Id"],
        name=_name(c),
        image=c.get("Image", ""),
        state=c.get("State", ""),
        labels=c.get("Labels") or {},
        networks=tuple(nets),
        mounts=mounts,
        ports=ports,
        health=_health(c.get("Status", "")),
        env=env,
        command=command,
    )
