"""The observed state of a Docker engine: a frozen snapshot filled in by the Docker adapter, read by the diff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from controller.core.hosts import every_interface
from controller.core.labels import KIND, MANAGED, NAME, volume_identity

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Attachment:
    network: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    type: str  # volume | bind | tmpfs
    source: str  # the volume name for type=volume, the host path for bind
    destination: str
    rw: bool = True  # a read-only mount never holds a server's data directory


@dataclass(frozen=True, slots=True)
class Port:
    container_port: int
    proto: str = "tcp"
    host_ip: str | None = None  # None: exposed, not published
    host_port: int | None = None

    @property
    def public(self) -> bool:
        return self.host_port is not None and every_interface(self.host_ip)


@dataclass(frozen=True, slots=True)
class Service:
    """What a Swarm service adds to the container it is seen as (adapters/docker/swarm.py)."""

    update_order: str  # stop-first | start-first: start-first would run a second task on the volume for a moment
    node: str | None = None  # the io.dbstate.node it is pinned to
    node_state: str | None = None  # "ready/active" when a node carries that label and may run tasks, else why not


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    image: str
    state: str  # created | running | paused | restarting | exited | removing | dead
    labels: Mapping[str, str] = field(default_factory=dict)
    networks: tuple[Attachment, ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[Port, ...] = ()
    health: str | None = None  # starting | healthy | unhealthy, when the image has a HEALTHCHECK
    # Only for containers that were inspected (the consumers). May hold secrets: never printed, never in repr.
    env: Mapping[str, str] | None = field(default=None, repr=False)
    command: tuple[str, ...] | None = field(default=None, repr=False)  # inspected only; may hold a secret too
    service: Service | None = None  # a Swarm service seen as a container (a Host with mode: swarm)

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED) == "true"

    @property
    def owner(self) -> tuple[str, str] | None:
        """(kind, name) of the declaration that created it, when dbstate did."""
        if not self.managed:
            return None
        return self.labels.get(KIND, ""), self.labels.get(NAME, "")

    def attachment(self, network: str) -> Attachment | None:
        for a in self.networks:
            if a.network == network:
                return a
        return None


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    driver: str
    internal: bool
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED) == "true"


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    driver: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> str:
        """Which volume this is, beyond its name (core/labels.py: its labels; "" when it has none)."""
        return volume_identity(self.labels)

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED) == "true"


@dataclass(frozen=True, slots=True)
class EngineInfo:
    host: str
    version: str
    api_version: str


@dataclass(frozen=True)
class LiveState:
    engine: EngineInfo
    containers: tuple[Container, ...] = ()
    networks: tuple[Network, ...] = ()
    volumes: tuple[Volume, ...] = ()
    unseen_nodes: frozenset[str] = frozenset()  # swarm: node labels whose engines did not answer (volumes unknown)
    _by_name: Mapping[str, Container] = field(default_factory=dict, repr=False, compare=False)
    _nets: Mapping[str, Network] = field(default_factory=dict, repr=False, compare=False)
    _vols: Mapping[str, Volume] = field(default_factory=dict, repr=False, compare=False)
    _owned: Mapping[tuple[str, str], tuple[Container, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({c.name: c for c in self.containers}))
        owned: dict[tuple[str, str], list[Container]] = {}
        for c in self.containers:
            if (o := c.owner) is not None:
                owned.setdefault(o, []).append(c)
        object.__setattr__(self, "_owned", MappingProxyType({k: tuple(v) for k, v in owned.items()}))
        object.__setattr__(self, "_nets", MappingProxyType({n.name: n for n in self.networks}))
        object.__setattr__(self, "_vols", MappingProxyType({v.name: v for v in self.volumes}))

    def container(self, name: str) -> Container | None:
        return self._by_name.get(name)

    def owned_by(self, kind: str, name: str) -> tuple[Container, ...]:
        """The containers whose labels say the declaration `kind`/`name` made them (any container name)."""
        return self._owned.get((kind, name), ())

    def network(self, name: str) -> Network | None:
        return self._nets.get(name)

    def volume(self, name: str) -> Volume | None:
        return self._vols.get(name)
