"""`dbstate audit`: the seed's audit script as data. Pure: the adapters observe and probe, this decides.

For every database container on the engine, managed or not (recognised by image and ports, or declared): its engine,
the version the server reports, networks, volumes, health, the consumers that reference it (declared `uses`, and the
host settings in the live containers' own env), the seed's four orphan criteria, and its naming. For every declared
`uses`, the connection verification: the consumer shares a network with the instance, the host its env names is an
alias there, and the instance answers on that network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core import checks, databases, live, spec, versions
from controller.core.health import ProbeResult, ProbeTarget
from controller.core.hosts import host_of
from controller.core.plan import Finding
from controller.core.recognise import engine_of, looks_like_database

COMPOSE_PROJECT = "com.docker.compose.project"
# env keys that name where a service connects (WIKIJS_DB_HOST, DATABASE_URL, INFISICAL_DB_CONNECTION, ...)
HOST_KEY = re.compile(r"HOST|URL|URI|DSN|CONNECTION|ADDR|SERVER", re.IGNORECASE)
# the seed's "Criteria for Orphaned Instances", in its order
NO_REFERENCE = "no-reference"  # no service references it (neither a declared `uses` nor any container's env)
NOT_DECLARED = "not-declared"  # in no desired state and in no compose project
NOT_MAPPED = "not-mapped"  # in no service-to-database mapping (no declared Consumer uses it)
VERSION_UNMET = "version-unmet"  # its version does not meet what it is declared as or its consumers require
CRITERIA = {
    NO_REFERENCE: "no service references it",
    NOT_DECLARED: "in no desired state and in no compose project",
    NOT_MAPPED: "in no service-to-database mapping (no declared consumer uses it)",
    VERSION_UNMET: "its version does not meet what is declared or what its consumers require",
}


@dataclass(frozen=True)
class Database:
    container: str
    engine: str | None
    image: str
    state: str
    health: str  # up | down (why) | the container's state
    managed: bool  # carries dbstate's labels
    declared_as: str | None  # the DatabaseInstance's name
    compose_project: str | None
    version: str | None
    version_source: str | None  # server | handshake | image
    networks: tuple[str, ...]
    volumes: tuple[str, ...]
    consumers_declared: tuple[str, ...]  # Consumer names whose `uses` names it
    consumers_env: tuple[str, ...]  # containers whose host settings name it
    orphan_criteria: tuple[str, ...]
    naming: str | None  # a naming-convention violation
    rtt_ms: float | None = None
    auth_weak: tuple[str, ...] = ()

    @property
    def problems(self) -> bool:
        return bool(self.orphan_criteria or self.naming or self.auth_weak or not self.health.startswith("up"))

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "engine": self.engine,
            "image": self.image,
            "state": self.state,
            "health": self.health,
            "managed": self.managed,
            "declared_as": self.declared_as,
            "compose_project": self.compose_project,
            "version": self.version,
            "version_source": self.version_source,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
            "networks": list(self.networks),
            "volumes": list(self.volumes),
            "consumers": {"declared": list(self.consumers_declared), "env": list(self.consumers_env)},
            "orphan_criteria": list(self.orphan_criteria),
            "naming": self.naming,
            "auth_weak": list(self.auth_weak),
        }


@dataclass(frozen=True)
class Connection:
    consumer: str
    instance: str
    network: str | None  # a network both are attached to, live
    host_env: str | None
    host: str | None  # the host the consumer's env names
    problem: str | None  # None: verified
    rtt_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "instance": self.instance,
            "network": self.network,
            "host_env": self.host_env,
            "host": self.host,
            "ok": self.problem is None,
            "problem": self.problem,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
        }


@dataclass(frozen=True)
class Report:
    databases: tuple[Database, ...]
    connections: tuple[Connection, ...]
    findings: tuple[Finding, ...]  # the plan's findings (isolation breaches, unhealthy, versions, ...)
    notes: tuple[str, ...] = field(default=())

    @property
    def wrong(self) -> bool:
        return bool(
            self.findings or any(d.problems for d in self.databases) or any(c.problem for c in self.connections)
        )


def own_credentials(c: live.Container, engine: spec.Engine) -> ProbeTarget:
    """For a database nobody declared: log in as the official images' env says it was set up (what an operator
    would do with `docker exec ... psql -U $POSTGRES_USER`). Values stay Secrets; they are never printed."""
    method, user, password, database = databases.of(engine).own_credentials(c.env or {})
    return ProbeTarget(c.name, engine, method, user, password, database)


# the image env that says the version in full (`*_VERSION`, not only its major), of every engine
IMAGE_VERSION_ENV = tuple(k for d in databases.every() for k in d.image_version_env if k.endswith("_VERSION"))


def image_version(c: live.Container) -> str | None:
    """The version the image says it ships (the official images set PG_VERSION, MARIADB_VERSION, ...)."""
    for key in IMAGE_VERSION_ENV:
        value = (c.env or {}).get(key)
        m = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", value or "")
        if m:
            return m.group(1)
    return None


def naming(container: str, engine: spec.Engine | None, service: str | None) -> str | None:
    if engine is None:
        return None
    if service is None:  # <service>-<service>-1 with any service
        m = re.fullmatch(r"([a-z0-9][a-z0-9-]*?)-\1-1", container)
        service = m.group(1) if m else container
    return checks.naming_convention(service, engine, container)


def references(db: live.Container, observed: live.LiveState, skip: frozenset[str]) -> tuple[str, ...]:
    """Containers (not databases themselves) whose host settings name `db` by its name or an alias on a network
    they share with it."""
    out = []
    for c in observed.containers:
        if c.name in skip or c.env is None:
            continue
        shared = {a.network for a in c.networks}
        names = {db.name} | {al for a in db.networks if a.network in shared for al in a.aliases}
        for key, value in c.env.items():
            if HOST_KEY.search(key) and host_of(value) in names:
                out.append(c.name)
                break
    return tuple(sorted(out))


def build(
    state: spec.DesiredState,
    observed: live.LiveState,
    findings: tuple[Finding, ...],
    probes: Mapping[str, ProbeResult],
    fallback_versions: Mapping[str, tuple[str, str]],
    connection_probes: Mapping[tuple[str, str], ProbeResult],
) -> Report:
    """`probes`: per container name, a probe with declared (or, for undeclared containers, their own) credentials;
    `fallback_versions`: per container, (version, source) when the login failed but the version is known otherwise;
    `connection_probes`: per (instance name, network), the instance probed at its address on that network."""
    by_container = {i.container_name: i for i in state.instances}
    uses: dict[str, list[tuple[spec.Consumer, spec.Use]]] = {}
    for con in state.consumers:
        for u in con.spec.uses:
            uses.setdefault(u.instance, []).append((con, u))
    db_containers = {c.name for c in observed.containers if c.name in by_container or looks_like_database(c)}
    databases = []
    for c in sorted(observed.containers, key=lambda c: c.name):
        if c.name not in db_containers:
            continue
        inst = by_container.get(c.name)
        if inst is not None and c.owner not in (None, (inst.kind, inst.metadata.name)):
            inst = None
        engine = engine_of(c, inst)
        r = probes.get(c.name)
        version, source = (r.version, "server") if r is not None and r.version else (None, None)
        if version is None and c.name in fallback_versions:
            version, source = fallback_versions[c.name]
        if c.state != "running":
            health_text = c.state
        elif r is None:
            health_text = "up (not probed)" if c.health in (None, "healthy") else f"down: docker says {c.health}"
        elif r.reachable:
            health_text = "up"
        else:
            health_text = f"down: {r.error}"
        declared_users = [con for con, _ in uses.get(inst.metadata.name, [])] if inst is not None else []
        env_users = references(c, observed, frozenset(db_containers))
        criteria = []
        if not declared_users and not env_users:
            criteria.append(NO_REFERENCE)
        if inst is None and not c.labels.get(COMPOSE_PROJECT):
            criteria.append(NOT_DECLARED)
        if not declared_users:
            criteria.append(NOT_MAPPED)
        if version is not None and inst is not None:
            minimums = [u.min_version for _, u in uses.get(inst.metadata.name, []) if u.min_version]
            if not versions.agree(inst.spec.version, version) or any(
                not versions.at_least(version, m) for m in minimums
            ):
                criteria.append(VERSION_UNMET)
        databases.append(
            Database(
                container=c.name,
                engine=engine.value if engine else None,
                image=c.image,
                state=c.state,
                health=health_text,
                managed=c.managed,
                declared_as=inst.metadata.name if inst is not None else None,
                compose_project=c.labels.get(COMPOSE_PROJECT),
                version=version,
                version_source=source,
                networks=tuple(a.network for a in c.networks),
                volumes=tuple(m.source for m in c.mounts if m.type == "volume"),
                consumers_declared=tuple(sorted(con.metadata.name for con in declared_users)),
                consumers_env=env_users,
                orphan_criteria=tuple(criteria),
                naming=naming(c.name, engine, inst.metadata.name if inst is not None else None),
                rtt_ms=r.rtt_ms if r is not None and r.reachable else None,
                auth_weak=r.auth_weak if r is not None else (),
            )
        )
    return Report(tuple(databases), connections(state, observed, connection_probes), findings)


def connections(
    state: spec.DesiredState, observed: live.LiveState, probes: Mapping[tuple[str, str], ProbeResult]
) -> tuple[Connection, ...]:
    """Per declared `uses`: a shared network (live), the env's host is an alias there, the instance answers there."""
    instances = {i.metadata.name: i for i in state.instances}
    out = []
    for con in state.consumers:
        for use in con.spec.uses:
            inst = instances.get(use.instance)
            if inst is None:
                continue
            name, target = con.metadata.name, use.instance
            cc, ic = observed.container(con.container_name), observed.container(inst.container_name)
            if cc is None or ic is None:
                missing = con.container_name if cc is None else inst.container_name
                out.append(Connection(name, target, None, use.host_env, None, f"container {missing} does not exist"))
                continue
            shared = sorted({a.network for a in cc.networks} & {a.network for a in ic.networks})
            if not shared:
                out.append(
                    Connection(name, target, None, use.host_env, None, f"{cc.name} shares no network with {ic.name}")
                )
                continue
            host = None
            network = shared[0]
            if use.host_env is not None and cc.env is not None:
                value = cc.env.get(use.host_env)
                if value is None:
                    out.append(
                        Connection(name, target, network, use.host_env, None, f"{use.host_env} is not set in {cc.name}")
                    )
                    continue
                host = host_of(value)
                where = [
                    n for n in shared if host == ic.name or host in (ic.attachment(n) or live.Attachment(n)).aliases
                ]
                if not where:
                    out.append(
                        Connection(
                            name,
                            target,
                            network,
                            use.host_env,
                            host,
                            f"{use.host_env} names {host!r}, which is no alias of {ic.name} on {', '.join(shared)}",
                        )
                    )
                    continue
                network = where[0]
            r = probes.get((target, network))
            if r is None:
                problem: str | None = f"{ic.name} was not probed on {network} (container {ic.state})"
            elif not r.reachable:
                problem = f"{ic.name} does not answer on {network}: {r.error}"
            else:
                problem = None
            rtt = r.rtt_ms if r is not None and r.reachable else None
            out.append(Connection(name, target, network, use.host_env, host, problem, rtt))
    return tuple(out)
