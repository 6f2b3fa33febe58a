"""A plan is plain data: the changes that would converge the engine, each with its reason, and the findings that
need a human. `plan` prints it; `apply` executes it and never re-decides."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from controller.core import spec


class Action(enum.StrEnum):
    CREATE = "create"  # a network, volume or container
    START = "start"  # a stopped container
    CONNECT = "connect"  # a missing network attachment or alias
    RECREATE = "recreate"  # the spec changed and the upgrade policy allows replacing the container
    DISCONNECT = "disconnect"  # an undeclared attachment to an isolated network
    REMOVE = "remove"  # an orphan container, only with --prune
    RESTART = "restart"  # an instance whose probes keep failing, only with policy.restartAfterFailedProbes
    ADOPT = "adopt"  # take over a matching container someone else made (policy.adopt: in-place); no engine call
    UPGRADE = "upgrade"  # a new major into a new volume (policy.upgrade: dump-restore or pg-upgrade)


SYMBOLS = {
    Action.CREATE: "+",
    Action.START: ">",
    Action.CONNECT: "~",
    Action.RECREATE: "-/+",
    Action.DISCONNECT: "~",
    Action.REMOVE: "-",
    Action.RESTART: "!",
    Action.ADOPT: "=",
    Action.UPGRADE: "^",
}


class FindingType(enum.StrEnum):
    ORPHAN = "orphan"  # carries dbstate's labels, no longer declared
    NAME_CONFLICT = "name-conflict"  # a declared container name held by a container dbstate does not manage
    IMAGE_DRIFT = "image-drift"  # the image differs and policy.upgrade is manual
    CONFIG_DRIFT = "config-drift"  # other differences dbstate will not repair on its own
    ISOLATION_BREACH = "isolation-breach"  # an undeclared container on an isolated network
    PUBLIC_PORT = "public-port"  # a database port published on every interface
    MISSING_CONSUMER = "missing-consumer"  # a declared consumer's container does not exist
    HOST_MISMATCH = "host-mismatch"  # a consumer's host variable names no alias of its instance
    UNMANAGED_DATABASE = "unmanaged-database"  # a database container nobody declared
    DRIFT = "drift"  # a change held back by policy.drift: warn
    VOLUME_LOST = "volume-lost"  # a declared volume seen before has vanished: nothing starts on a new empty one
    OUT_OF_SCOPE = "out-of-scope"  # a container dbstate did not make and the controller's scope does not allow
    ADOPTION_BLOCKED = "adoption-blocked"  # policy.adopt: in-place, but the container differs from the declaration
    CO_MANAGED = "co-managed"  # an adopted container that compose also claims (its project label)
    VOLUME_IN_USE = "volume-in-use"  # another container (any owner) mounts the data a create/start would mount
    MAJOR_UPGRADE = "major-upgrade"  # a new major version: never a plain recreate
    DATA_MOVED = "data-moved"  # the declaration mounts other data than the container holds: no recreate
    ROLLBACK = "rollback"  # the declaration names a kept server again (a reverted upgrade): `dbstate rollback`
    INTERRUPTED = "interrupted-cutover"  # a new server still alone on a cutover's private network, never checked
    NODE_UNAVAILABLE = "node-unavailable"  # a swarm node that holds an instance's volumes cannot run its task
    # from probes of the servers themselves (plan --probe, run, audit)
    UNHEALTHY = "unhealthy"  # the last N probes failed (not reachable, or the declared auth is refused)
    VERSION_MISMATCH = "version-mismatch"  # the server reports another major version than spec.version
    AUTH_WEAK = "auth-weak"  # the server accepts weaker authentication than declared
    VERSION_INCONSISTENT = "version-inconsistent"  # shared instances of one engine on different majors

    @property
    def blocks(self) -> bool:
        """An open finding of this type means the engine has not converged (BLOCKING, the one table): `apply`'s exit
        code and `"converged"`, the web view's marks and the `dbstate_blocking_findings` gauge all read this."""
        return self in BLOCKING


# The findings that leave a declared resource out of management or hold it back to protect its data: while one is
# open the engine has not converged (`apply` exits 1, `"converged": false`), whatever else succeeded.
BLOCKING = frozenset(
    {
        FindingType.NAME_CONFLICT,
        FindingType.ADOPTION_BLOCKED,
        FindingType.VOLUME_IN_USE,
        FindingType.DATA_MOVED,
        FindingType.MAJOR_UPGRADE,
        FindingType.VOLUME_LOST,
        FindingType.ROLLBACK,
        FindingType.INTERRUPTED,
    }
)


class NoteType(enum.StrEnum):
    ADOPTED = "adopted"  # a declared network or volume that exists without dbstate's labels, taken as it is
    HELD_BACK = "held-back"  # a declaration with errors: left alone, never orphaned
    SUSPENDED = "suspended"  # an instance a human works on (policy.suspended, `dbstate suspend`): not acted on
    KEPT = "kept"  # the stopped server from before an upgrade, kept with its volume until a human removes it
    HELD = "held"  # a change that interrupts a database, waiting for its maintenance window (policy.window)


# One payload type per action: what the change does, typed for apply; `to_json()` is its `details` in plan JSON.


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """CREATE of a Network."""

    driver: str
    internal: bool
    labels: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"driver": self.driver, "internal": self.internal, "labels": dict(self.labels)}


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    """CREATE of a Volume."""

    driver: str
    labels: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"driver": self.driver, "labels": dict(self.labels)}


@dataclass(frozen=True, slots=True)
class InstanceParts:
    """What a database's container has and a consumer's does not."""

    volumes: Mapping[str, str]  # source -> target
    command: tuple[str, ...]
    ports: tuple[str, ...]
    restart_policy: str


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """CREATE of a container (an instance's or a consumer's), as the plan shows it: env redacted. The values that
    apply passes to the engine come from the change's declaration (`Change.resource`), never from here."""

    image: str
    networks: Mapping[str, tuple[str, ...]]  # network -> aliases
    env: Mapping[str, str]  # redacted
    labels: Mapping[str, str]
    instance: InstanceParts | None = None  # None: a consumer

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "networks": {n: list(a) for n, a in self.networks.items()},
            "env": dict(self.env),
            "labels": dict(self.labels),
        }
        if self.instance is not None:
            i = self.instance
            out.update(
                {
                    "volumes": dict(i.volumes),
                    "command": list(i.command),
                    "ports": list(i.ports),
                    "restart_policy": i.restart_policy,
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class Recreate:
    """RECREATE: the new container, and what the old one was."""

    container: ContainerSpec
    from_hash: str | None
    to_hash: str
    from_image: str
    backup_first: bool  # a database is backed up first (engine/guard.py): the change fails if it cannot be

    def to_json(self) -> dict[str, Any]:
        return {
            **self.container.to_json(),
            "from_hash": self.from_hash,
            "to_hash": self.to_hash,
            "from_image": self.from_image,
            "backup_first": self.backup_first,
        }


@dataclass(frozen=True, slots=True)
class Upgrade:
    """UPGRADE (policy.upgrade: dump-restore or pg-upgrade): the new container, the old image and majors, where the
    data moves, and how."""

    container: ContainerSpec
    from_image: str
    from_major: str
    to_major: str
    moves: Mapping[str, tuple[str, str]]  # mount target -> (old volume, new volume)
    # the running containers of the declared consumers (in scope) that are paused from before the old server stops
    # until the new one holds the data, checked, on its networks
    consumers: tuple[str, ...] = ()
    method: str = "dump-restore"  # spec.UpgradePolicy's value
    transfer: str | None = None  # pg-upgrade: spec.UpgradeTransfer's value

    @property
    def reversible(self) -> bool:
        """Whether the old volume still holds a server that can start after the cutover (`dbstate rollback`)."""
        return self.transfer not in ("link", "swap")

    def to_json(self) -> dict[str, Any]:
        return {
            **self.container.to_json(),
            "from_image": self.from_image,
            "from_major": self.from_major,
            "to_major": self.to_major,
            "moves": {t: list(m) for t, m in self.moves.items()},
            "consumers": list(self.consumers),
            "method": self.method,
            **({"transfer": self.transfer, "reversible": self.reversible} if self.transfer else {}),
        }


@dataclass(frozen=True, slots=True)
class Attach:
    """CONNECT: to `network` with `aliases`; `reconnect`: disconnect first (an endpoint's aliases cannot change)."""

    network: str
    aliases: tuple[str, ...]
    reconnect: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"network": self.network, "aliases": list(self.aliases)}
        if self.reconnect:
            out["reconnect"] = True
        return out


@dataclass(frozen=True, slots=True)
class Detach:
    """DISCONNECT from `network`."""

    network: str

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network}


@dataclass(frozen=True, slots=True)
class Adopt:
    """ADOPT: the container taken over, and the declaration's hash it matched."""

    container_id: str
    spec_hash: str

    def to_json(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "spec_hash": self.spec_hash}


@dataclass(frozen=True, slots=True)
class Remove:
    """REMOVE: an orphan (--prune), or `leftover` of an interrupted recreate (removed before its successor starts)."""

    leftover: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"leftover": True} if self.leftover else {}


@dataclass(frozen=True, slots=True)
class Restart:
    """RESTART of a server whose probes keep failing; `backup_first` as for a recreate."""

    backup_first: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"backup_first": True} if self.backup_first else {}


Payload = NetworkSpec | VolumeSpec | ContainerSpec | Recreate | Upgrade | Attach | Detach | Adopt | Remove | Restart


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    kind: spec.Kind  # DatabaseInstance | Consumer | Network | Volume (Container: an orphan of no known kind)
    name: str  # the declaration's name (the container's name for an orphan)
    target: str  # what the engine call acts on: a container, network or volume name
    reason: str
    payload: Payload | None = None  # what the action does (None: START; secrets already redacted)
    # "Kind/name" of the resources whose changes must succeed first (networks, volumes, the instances a consumer uses)
    requires: tuple[str, ...] = ()
    # The declaration the change comes from (with resolved secrets): for apply only, never printed or serialised.
    resource: spec.Workload | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def details(self) -> dict[str, Any]:
        """The payload as plan JSON shows it."""
        return self.payload.to_json() if self.payload is not None else {}

    @property
    def container(self) -> ContainerSpec | None:
        """The container a CREATE, RECREATE or UPGRADE makes."""
        p = self.payload
        if isinstance(p, ContainerSpec):
            return p
        if isinstance(p, Recreate | Upgrade):
            return p.container
        return None

    @property
    def labels(self) -> Mapping[str, str]:
        """The labels of what the change creates ({} for a change that creates nothing)."""
        if isinstance(self.payload, NetworkSpec | VolumeSpec):
            return self.payload.labels
        made = self.container
        return made.labels if made is not None else {}

    @property
    def backup_first(self) -> bool:
        return isinstance(self.payload, Recreate | Restart) and self.payload.backup_first

    @property
    def from_image(self) -> str | None:
        """The image of the container a RECREATE or UPGRADE replaces."""
        return self.payload.from_image if isinstance(self.payload, Recreate | Upgrade) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "reason": self.reason,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    type: FindingType
    kind: str  # a spec.Kind, or a held-back document's kind as written
    name: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type.value, "kind": self.kind, "name": self.name, "message": self.message}


@dataclass(frozen=True, slots=True)
class Note:
    type: NoteType
    kind: str  # a spec.Kind, or a held-back document's kind as written
    name: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type.value, "kind": self.kind, "name": self.name, "message": self.message}


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.changes

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)


Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one change when a plan was applied."""

    change: Change
    status: Status
    message: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.change.action.value,
            "kind": self.change.kind,
            "name": self.change.name,
            "target": self.change.target,
            "status": self.status,
            "message": self.message,
            "seconds": round(self.seconds, 3),
        }


class ResourceStatus(NamedTuple):
    """A resource after a pass, as `dbstate status` shows it."""

    key: str  # Kind/name
    status: str  # in-sync | drifted | failing | findings | invalid | suspended
    message: str
    attempts: int
    next_retry: float | None  # wall-clock time of the next retry, when failing
    revision: str | None
