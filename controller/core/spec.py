"""Desired-state models (format v1): what the YAML documents declare, validated, frozen, unknown fields rejected.

Field names are the YAML's camelCase through aliases; Python code uses snake_case. Values arrive here already
interpolated (see `core.interpolate`): secret values are `Secret`, never plain strings.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from controller.core.hosts import endpoint_problem, every_interface

if TYPE_CHECKING:
    from controller.core.diagnostics import Diagnostic
from controller.core.secrets import Secret

API_VERSION = "dbstate.io/v1"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Docker object names: volumes and networks allow underscores and dots (the seed's `postgres_data`).
DOCKER_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # a swarm node label's value (spec.node)
VERSION_PATTERN = r"^\d+(\.\d+)*$"
PORT_PATTERN = r"^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{1,5}:)?\d{1,5}(/(tcp|udp|sctp))?$"
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)

ResourceName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]
DockerName = Annotated[str, StringConstraints(pattern=DOCKER_NAME_PATTERN, max_length=128)]
EnvMap = dict[str, str | Secret]


def is_secret_key(key: str) -> bool:
    """Keys whose values are secrets by the format's rule (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*KEY*`)."""
    return bool(SECRET_KEY.search(key))


@dataclass(frozen=True, slots=True)
class PortPublish:
    """A parsed `ports` entry: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`."""

    host_ip: str  # "" means every interface
    host_port: int | None  # None: the engine picks one
    container_port: int
    proto: str

    @property
    def public(self) -> bool:
        return every_interface(self.host_ip)


def parse_port(text: str) -> PortPublish:
    """Parse a port entry that already matched PORT_PATTERN."""
    body, _, proto = text.partition("/")
    host_ip = ""
    if body.startswith("["):
        end = body.index("]")
        host_ip, body = body[1:end], body[end + 2 :]
    parts = body.split(":")
    if len(parts) == 3:
        host_ip, parts = parts[0], parts[1:]
    if len(parts) == 2:
        return PortPublish(host_ip, int(parts[0]), int(parts[1]), proto or "tcp")
    return PortPublish(host_ip, None, int(parts[0]), proto or "tcp")


class Model(BaseModel):
    """Frozen, unknown fields rejected, camelCase in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=False,
        hide_input_in_errors=True,  # an error must never echo a value: it may be a secret
        defer_build=True,  # a model's validator is built when first used: a command pays only for what it reads
    )


class Engine(enum.StrEnum):
    POSTGRES = "postgres"
    MARIADB = "mariadb"
    MYSQL = "mysql"
    REDIS = "redis"
    VALKEY = "valkey"


class DriftPolicy(enum.StrEnum):
    ENFORCE = "enforce"  # repair
    WARN = "warn"  # report only
    IGNORE = "ignore"  # neither


class UpgradePolicy(enum.StrEnum):
    MANUAL = "manual"  # an image change is a finding
    RECREATE = "recreate"  # recreate the container, keeping its volumes (never across a major version)
    DUMP_RESTORE = (
        "dump-restore"  # as recreate; a new major: dump, restore into a new volume, switch (engine/upgrading)
    )
    PG_UPGRADE = "pg-upgrade"  # as dump-restore, PostgreSQL only: pg_upgrade into the new volume (engine/pg_upgrading)


class UpgradeTransfer(enum.StrEnum):
    """How pg_upgrade brings the old data files into the new cluster (its "transfer mode")."""

    COPY = "copy"  # every file copied: the old volume is never changed, `dbstate rollback` always possible
    LINK = "link"  # hard links: seconds at any size; once the new server ran, the old cluster can never start again
    CLONE = "clone"  # reflinks (btrfs, XFS): as fast as link and the old cluster stays usable; refused elsewhere
    SWAP = "swap"  # PostgreSQL 18+: the old files moved into the new cluster, the fastest; the old cluster is gone


class AdoptPolicy(enum.StrEnum):
    NEVER = "never"  # a container of the declared name that dbstate did not create is a name-conflict
    IN_PLACE = "in-place"  # ...is taken over as it is when it matches the declaration (core/adoption.py)


class RestartPolicy(enum.StrEnum):
    NO = "no"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"
    ON_FAILURE = "on-failure"


RESERVED_LABEL_PREFIX = "io.dbstate."  # dbstate's own labels: it writes them and trusts them (core/labels.py)


def _not_reserved(key: str) -> str:
    if key.startswith(RESERVED_LABEL_PREFIX):
        raise ValueError(
            f"labels under {RESERVED_LABEL_PREFIX} are dbstate's own (it writes them, and trusts them): "
            "a desired state may not set them; use another prefix"
        )
    return key


LabelKey = Annotated[str, AfterValidator(_not_reserved)]
Labels = dict[LabelKey, str]


class Metadata(Model):
    name: ResourceName
    labels: Labels = Field(default_factory=dict, description="copied onto the container")


class VolumeMetadata(Model):
    """Volumes and networks keep Docker's naming (the seed's `postgres_data`, `supabase-network`)."""

    name: DockerName
    labels: Labels = Field(default_factory=dict)


class NetworkAttachment(Model):
    name: DockerName
    aliases: tuple[str, ...] = Field(default=(), description="the host names consumers use")


class VolumeMount(Model):
    # fields added after containers were created from this model: left out of the spec hash at their default, so that
    # adding them recreates nothing
    HASH_OMIT_DEFAULTS: ClassVar[frozenset[str]] = frozenset({"type", "read_only"})

    type: Literal["volume", "bind"] = Field(
        default="volume",
        description="volume: a declared Volume; bind: a host directory, inside a bind root the controller allows "
        "(--allow-bind-root)",
    )
    source: str = Field(description="a declared Volume's name; for type bind, an absolute host path")
    target: Annotated[str, StringConstraints(pattern=r"^/")]
    read_only: bool = Field(
        default=False,
        description="mounted read-only: a reader of data another instance serves (a backup or report sidecar); "
        "only a read-only mount may share its source with another declaration",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("type", "volume") == "volume":
            if not re.match(DOCKER_NAME_PATTERN, value) or len(value) > 128:
                raise ValueError(f"{value!r} is not a volume name (a bind mount needs `type: bind`)")
            return value
        if not value.startswith("/"):
            raise ValueError(f"{value!r}: a bind mount's source is an absolute host path")
        if value.rstrip("/") == "" or ".." in value.split("/") or "//" in value:
            raise ValueError(f"{value!r}: not / itself, and no `..` or `//` in the path")
        return value.rstrip("/")


class Auth(Model):
    """What the health probe logs in with, and what it verifies."""

    method: Literal["scram-sha-256", "md5", "password", "none"]
    user: str | None = None
    password: Secret | None = None
    database: str | None = None


DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    m = DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return int(m.group(1)) * DURATION_SECONDS[m.group(2)]


def _duration(text: str | None) -> str | None:
    if text is not None and duration_seconds(text) < 60:
        raise ValueError("a backup schedule of less than a minute would never let the server rest")
    return text


class BackupPolicy(Model):
    before_change: bool = Field(
        default=True,
        description="take a backup (checked against its manifest) before a recreate or an upgrade; if it fails, the "
        "change fails and nothing is recreated",
    )
    schedule: Annotated[str | None, AfterValidator(_duration)] = Field(
        default=None, description="`dbstate run` backs the instance up this often, e.g. 24h (off when unset)"
    )
    keep: int = Field(default=7, ge=1, description="the newest N backups of this instance are kept, older ones removed")
    verify: Annotated[str | None, AfterValidator(_duration)] = Field(
        default=None,
        description="`dbstate run` restores the newest backup into a throw-away server this often, e.g. 24h, unless "
        "one newer was verified (dbstate_backup_last_verified_timestamp_seconds; off when unset)",
    )


def _cron(text: str) -> str:
    from controller.core import windows  # here: windows builds on this module

    windows.parse(text)
    return text


def _zone(text: str) -> str:
    from controller.core import windows

    windows.zone(text)
    return text


def _window_length(text: str) -> str:
    if duration_seconds(text) < 60:
        raise ValueError("a window shorter than a minute lets nothing run")
    return text


class Window(Model):
    """When changes that interrupt the database may run: from each time `cron` names, for `duration`."""

    cron: Annotated[str, AfterValidator(_cron)] = Field(
        description="five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * SUN'"
    )
    duration: Annotated[str, AfterValidator(_window_length)] = Field(description="how long it stays open, e.g. 2h")
    time_zone: Annotated[str, AfterValidator(_zone)] = Field(default="UTC", description="e.g. Europe/Berlin")


class InstancePolicy(Model):
    drift: DriftPolicy = DriftPolicy.ENFORCE
    upgrade: UpgradePolicy = UpgradePolicy.MANUAL
    window: Window | tuple[Window, ...] | None = Field(
        default=None,
        description="maintenance window(s): a recreate, a restart or an upgrade waits for one to be open (the plan "
        "says until when); starting a stopped server or reconnecting never waits; `apply --ignore-window` does not",
    )
    upgrade_transfer: UpgradeTransfer = Field(
        default=UpgradeTransfer.COPY,
        description="with upgrade: pg-upgrade, how pg_upgrade moves the data files: copy (the old volume is never "
        "changed: `dbstate rollback` can go back), link (hard links, seconds at any size; no way back but the backup "
        "taken first), clone (reflinks on btrfs or XFS: fast and reversible), swap (PostgreSQL 18+, no way back)",
    )
    suspended: bool = Field(
        default=False,
        description="true: dbstate observes, probes and reports this instance but changes nothing of it (maintenance; "
        "`dbstate suspend NAME` does the same without a commit)",
    )
    adopt: AdoptPolicy = Field(
        default=AdoptPolicy.NEVER,
        description="in-place: a container of the declared name made by someone else (compose, by hand) is taken "
        "over without being recreated when its image, volumes and env match (`dbstate import` writes it)",
    )
    deletion_protection: bool = True
    backup: BackupPolicy = Field(default_factory=BackupPolicy)
    restart_after_failed_probes: int | None = Field(
        default=None,
        ge=1,
        description="restart the container after this many consecutive failed probes (then 2x, 4x, ...); "
        "off when unset",
    )

    @property
    def windows(self) -> tuple[Window, ...]:
        if self.window is None:
            return ()
        return self.window if isinstance(self.window, tuple) else (self.window,)


HostName = Annotated[
    ResourceName | None,
    Field(
        default=None,
        description="the Host (Docker engine) it lives on; without any Host document, the one engine of "
        "--docker-host; with exactly one Host, that one",
    ),
]


class Monitoring(Model):
    """The exporter dbstate runs beside an instance (core/monitoring.py): on unless `monitoring: false`."""

    enabled: bool = True
    image: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        default=None,
        description="the exporter's image; default: the variable DBSTATE_<EXPORTER>_IMAGE (e.g. "
        "DBSTATE_POSTGRES_EXPORTER_IMAGE, a site's mirror), else the exporter project's own pinned image",
    )
    user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = Field(
        default="dbstate_monitor",
        description="the least-privilege login dbstate makes for the exporter through the database's own client",
    )
    password: Secret | None = Field(
        default=None,
        description="its password (${VAR}); default: derived from the declared password, so that a password "
        "change in the env file reaches the exporter",
    )


class DatabaseInstanceSpec(Model):
    # added after containers were created from this model: left out of the spec hash at its default
    HASH_OMIT_DEFAULTS: ClassVar[frozenset[str]] = frozenset({"node"})

    host: HostName
    engine: Engine
    version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)] = Field(
        description="the major version the live server must report, e.g. '16' or '10.11'"
    )
    image: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="pinned: a tag other than `latest`, or a digest"
    )
    container_name: DockerName | None = Field(
        default=None, description="the container's name; defaults to metadata.name (the seed asks for explicit names)"
    )
    networks: tuple[NetworkAttachment, ...] = Field(min_length=1)
    volumes: tuple[VolumeMount, ...] = ()
    env: EnvMap = Field(default_factory=dict)
    command: tuple[str, ...] = Field(default=(), description="replaces the image's command when not empty")
    ports: tuple[Annotated[str, StringConstraints(pattern=PORT_PATTERN)], ...] = Field(
        default=(), description='"127.0.0.1:5432:5432"; a publish on 0.0.0.0 is a finding'
    )
    restart_policy: RestartPolicy = RestartPolicy.UNLESS_STOPPED
    auth: Auth
    policy: InstancePolicy = Field(default_factory=InstancePolicy)
    node: Annotated[str, StringConstraints(pattern=NODE_PATTERN)] | None = Field(
        default=None,
        description="on a Host with mode: swarm, the node that holds its volumes: the service runs only on the node "
        "labelled io.dbstate.node=<this> (`docker node update --label-add io.dbstate.node=<this> NODE`)",
    )
    monitoring: bool | Monitoring = Field(
        default=True,
        description="true (default): dbstate runs the engine's standard Prometheus exporter beside it, on its "
        "network, with a monitoring login of its own; false: none (an exporter it ran is removed)",
    )


class NetworkSpec(Model):
    host: HostName
    driver: str = "bridge"
    internal: bool = False
    isolated: bool = Field(default=False, description="only declared members may be attached")


class VolumeSpec(Model):
    host: HostName
    driver: str = "local"


class Use(Model):
    instance: ResourceName = Field(description="a DatabaseInstance")
    host_env: str | None = Field(
        default=None, description="the consumer's env var that must name one of the instance's aliases"
    )
    min_version: Annotated[str, StringConstraints(pattern=VERSION_PATTERN)] | None = Field(
        default=None, description="the lowest server version the consumer supports, e.g. '14' (audit checks it)"
    )
    published: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")] | None = Field(
        default=None,
        description="ADDRESS:PORT: the instance lives on another Host and is reached through its published port on "
        "that engine's address (the instance must publish PORT; hostEnv must name ADDRESS)",
    )


class ComposeService(Model):
    project: Annotated[str, StringConstraints(min_length=1)]
    service: Annotated[str, StringConstraints(min_length=1)]


class ConsumerSpec(Model):
    host: HostName
    container_name: DockerName | None = Field(default=None, description="the application's container")
    compose: ComposeService | None = Field(
        default=None,
        description="instead of containerName: the compose project and service that run it (whatever compose named "
        "the container: `project-service-1`, `project_service_1` or its container_name)",
    )
    image: str | None = Field(
        default=None,
        description="null: managed elsewhere, dbstate only checks and reconnects it; set: dbstate manages it too",
    )
    networks: tuple[NetworkAttachment, ...] = ()
    env: EnvMap = Field(default_factory=dict, description="the container's env when dbstate manages it (image set)")
    uses: tuple[Use, ...] = ()

    @model_validator(mode="after")
    def _named_once(self) -> ConsumerSpec:
        if (self.container_name is None) == (self.compose is None):
            raise ValueError("name the container once: containerName, or compose: {project, service}")
        if self.compose is not None and self.image is not None:
            raise ValueError("compose names a container that compose runs: image must be null")
        return self


class HostTLS(Model):
    """Client certificates for a `tcp://` engine that verifies them (dockerd --tlsverify): file paths, absolute or
    relative to the desired-state directory. Files, not values: a key never sits in the desired state."""

    ca: Annotated[str, StringConstraints(min_length=1)]
    cert: Annotated[str, StringConstraints(min_length=1)]
    key: Annotated[str, StringConstraints(min_length=1)]


ENDPOINT = r"^(unix:///.+|tcp://[^/\s]+|ssh://[^/\s]+)$"


def _endpoint_ok(value: str) -> str:
    problem = endpoint_problem(value)
    if problem is not None:
        raise ValueError(f"not a Docker engine's address: {problem}")
    return value


def _tls_needs_tcp(endpoint: str, tls: HostTLS | None) -> None:
    if tls is not None and not endpoint.startswith("tcp://"):
        raise ValueError("tls goes with a tcp:// endpoint")


# a Docker engine's address (a Host's, a swarm node's)
Endpoint = Annotated[str, StringConstraints(pattern=ENDPOINT), AfterValidator(_endpoint_ok)]


class NodeEngine(Model):
    """The engine of one node of a swarm, for what the manager's API does not do: running the databases' own tools
    (probes, backups, restores) in a task's container on that node."""

    endpoint: Endpoint = Field(description="that node's own engine: unix://, tcp:// (with tls) or ssh://")
    tls: HostTLS | None = None

    @model_validator(mode="after")
    def _tls_on_tcp(self) -> NodeEngine:
        _tls_needs_tcp(self.endpoint, self.tls)
        return self


class HostSpec(Model):
    endpoint: Endpoint = Field(
        description="unix:///var/run/docker.sock, tcp://HOST:2376 (with tls), or ssh://user@host (the ssh client "
        "and the remote docker CLI)"
    )
    tls: HostTLS | None = None
    nodes: dict[Annotated[str, StringConstraints(pattern=NODE_PATTERN)], NodeEngine] = Field(
        default_factory=dict,
        description="mode: swarm only: each worker node's engine, by the node label (`spec.node`) of the instances "
        "it runs; the tools of a task on a node that is neither the manager nor listed here cannot be run",
    )
    mode: Literal["engine", "swarm"] = Field(
        default="engine",
        description="engine: containers on this Docker engine; swarm: the endpoint is a Swarm manager, each "
        "DatabaseInstance a service of one replica pinned to its spec.node, networks overlay, secrets Swarm secrets",
    )
    probe_via: Literal["direct", "exec", "auto"] | None = Field(
        default=None,
        description="how its databases are probed; default: --probe-via (auto falls back to exec when the "
        "controller has no route to the container)",
    )

    @model_validator(mode="after")
    def _tls_on_tcp(self) -> HostSpec:
        _tls_needs_tcp(self.endpoint, self.tls)
        if self.nodes and self.mode != "swarm":
            raise ValueError("nodes are named only with mode: swarm")
        return self


class Kind(enum.StrEnum):
    """The kinds of resource a document declares, and `Container` for a container nobody declares (an orphan, an
    unmanaged database). Equal to its text: `Kind.VOLUME == "Volume"`. A finding about a held-back document keeps the
    kind as written (it may be a typo), so findings and notes carry text."""

    DATABASE_INSTANCE = "DatabaseInstance"
    NETWORK = "Network"
    VOLUME = "Volume"
    CONSUMER = "Consumer"
    HOST = "Host"
    EXPORTER = "Exporter"  # derived from a DatabaseInstance (spec.monitoring), never written in a document
    CONTAINER = "Container"

    @classmethod
    def of(cls, text: str | None) -> Kind | None:
        """The kind `text` names (a label's value), or None."""
        return next((k for k in cls if k.value == text), None)


class _Document(Model):
    api_version: Literal["dbstate.io/v1"]


class DatabaseInstance(_Document):
    kind: Literal[Kind.DATABASE_INSTANCE]
    metadata: Metadata
    spec: DatabaseInstanceSpec

    @property
    def container_name(self) -> str:
        return self.spec.container_name or self.metadata.name


class Network(_Document):
    kind: Literal[Kind.NETWORK]
    metadata: VolumeMetadata
    spec: NetworkSpec = Field(default_factory=NetworkSpec)


class Volume(_Document):
    kind: Literal[Kind.VOLUME]
    metadata: VolumeMetadata
    spec: VolumeSpec = Field(default_factory=VolumeSpec)


class Host(_Document):
    """One Docker engine, reached from the controller: its resources are reconciled by a reconciler of its own."""

    kind: Literal[Kind.HOST]
    metadata: Metadata
    spec: HostSpec


class Consumer(_Document):
    kind: Literal[Kind.CONSUMER]
    metadata: Metadata
    spec: ConsumerSpec

    @property
    def container_name(self) -> str:
        """Its container's name; for `compose`, compose v2's name of replica 1 until the observed state says which
        container it is (core/composeref.py)."""
        if self.spec.container_name is not None:
            return self.spec.container_name
        assert self.spec.compose is not None
        return f"{self.spec.compose.project}-{self.spec.compose.service}-1"


class ExporterSpec(Model):
    host: HostName
    instance: ResourceName
    engine: Engine
    image: str
    container_name: DockerName
    networks: tuple[NetworkAttachment, ...]
    env: EnvMap = Field(default_factory=dict)
    command: tuple[str, ...] = ()  # its flags (never a secret)
    port: int
    user: str | None = None  # the monitoring login (None: the server asks for none)
    password: Secret | None = None  # its password (in `env` too, for the exporter; here for the output scrubbers)


class Exporter(_Document):
    """The exporter beside a monitored instance: derived from it (core/monitoring.py), managed like a container of
    its own. `instance` is where its login is made; it is not part of the exporter's spec hash."""

    kind: Literal[Kind.EXPORTER]
    metadata: Metadata
    spec: ExporterSpec
    instance: DatabaseInstance

    @property
    def container_name(self) -> str:
        return self.spec.container_name


Workload = DatabaseInstance | Consumer | Exporter  # what dbstate makes a container of
Resource = DatabaseInstance | Network | Volume | Consumer | Host
Document = Annotated[Resource, Field(discriminator="kind")]
KINDS: dict[str, type[Resource]] = {
    Kind.DATABASE_INSTANCE: DatabaseInstance,
    Kind.NETWORK: Network,
    Kind.VOLUME: Volume,
    Kind.CONSUMER: Consumer,
    Kind.HOST: Host,
}


@dataclass(frozen=True)
class DesiredState:
    """Everything that loaded cleanly, plus what must be left alone because its declaration is broken. The loader
    assembles it from resources that validated already: a plain value, not a model (nothing is validated twice)."""

    instances: tuple[DatabaseInstance, ...] = ()
    networks: tuple[Network, ...] = ()
    volumes: tuple[Volume, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    hosts: tuple[Host, ...] = ()
    exporters: tuple[Exporter, ...] = ()  # derived from the instances (core/monitoring.py)
    # (kind, name) and container names claimed by documents that failed to load: never orphaned or pruned.
    held_back: frozenset[tuple[str, str]] = frozenset()
    held_back_containers: frozenset[str] = frozenset()
    complete: bool = True  # false when any file or resource had errors: no prune
    # Files that could not be parsed at all: what they declare is unknown, so nothing may look deleted.
    unreadable_files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind in ("instances", "networks", "volumes", "consumers", "hosts", "exporters"):
            resources: tuple[Resource, ...] = getattr(self, kind)
            object.__setattr__(self, kind, tuple(sorted(resources, key=lambda r: r.metadata.name)))


def _plain(value: Any) -> Any:
    """The normalised, fully resolved form of a value, for hashing only."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        omit: frozenset[str] = getattr(type(value), "HASH_OMIT_DEFAULTS", frozenset())
        return {
            k: _plain(getattr(value, k)) for k in fields if not (k in omit and getattr(value, k) == fields[k].default)
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


def spec_hash(resource: Workload) -> str:
    """A hash of the normalised spec with resolved values (a changed secret counts as a change) and labels.

    The policy and the auth block do not change the container, so they are left out: changing them never recreates.
    """
    import hashlib  # here: only the diff needs it, not validate

    spec = _plain(resource.spec)
    spec.pop("policy", None)
    spec.pop("auth", None)
    spec.pop("monitoring", None)  # the exporter's, not the server's
    spec.pop("host", None)  # where it runs: the engine, not the container (and added after containers were made)
    body = {"spec": spec, "labels": _plain(resource.metadata.labels)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SourceLocation:
    file: str
    line: int


@dataclass(frozen=True)
class Loaded:
    """The result of reading a desired-state directory: what is valid, and everything that was said about it."""

    state: DesiredState
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...]
    sources: dict[tuple[str, str], SourceLocation]
    variables_from: str | None = None  # the env file used, if any
    # secret values known by value (the env file's secret-named variables, those used under a secret key): the
    # output scrubbers add them to the resolved Secrets
    secret_values: frozenset[str] = frozenset()

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")
