"""Checks of the desired state beyond field types: pinned images, references, uniqueness, the seed's conventions.

Each check returns `Finding`-free `Problem`s: an error holds the resource back from reconciliation, a warning is
reported and changes nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from controller.core import databases, placement, spec, versions

Path = tuple[str | int, ...]
Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    name: str
    path: Path
    message: str
    severity: Severity = "error"
    index: int = 0  # which of the resources of this kind passed to the check (duplicates share a name)


def check_instance(inst: spec.DatabaseInstance) -> list[Problem]:
    out: list[Problem] = []
    kind, name = inst.kind, inst.metadata.name

    def err(path: Path, message: str, severity: Severity = "error") -> None:
        out.append(Problem(kind, name, path, message, severity))

    s = inst.spec
    _repo, tag, digest = versions.split_image(s.image)
    if digest is None:
        if tag is None:
            err(("spec", "image"), f"image {s.image!r} is not pinned: name a tag (not `latest`) or a digest")
        elif tag == "latest":
            err(("spec", "image"), f"image {s.image!r} is not pinned: `latest` moves; name a version tag or a digest")
        else:
            revealed = versions.tag_version(tag)
            if revealed is not None and not versions.agree(s.version, revealed):
                err(
                    ("spec", "version"),
                    f"version {s.version!r} disagrees with the image tag {tag!r}, which says {revealed}",
                )
    engine = databases.of(s.engine)
    allowed = engine.auth_methods
    if s.auth.method not in allowed:
        err(
            ("spec", "auth", "method"),
            f"{s.auth.method!r} does not fit engine {s.engine.value}: use {' or '.join(sorted(allowed))}",
        )
    if s.auth.method != "none" and s.auth.password is None:
        err(("spec", "auth", "password"), f"required with method {s.auth.method}")
    if engine.needs_user and s.auth.user is None:
        err(("spec", "auth", "user"), f"required for engine {s.engine.value}")
    sources = [v.source for v in s.volumes]
    for i, v in enumerate(s.volumes):
        if sources.count(v.source) > 1 and sources.index(v.source) != i:
            err(("spec", "volumes", i, "source"), f"volume {v.source} is mounted twice")
    for path, message in engine.checks(s):
        err(path, message)
    _upgrade_policy(s, err)
    for i, p in enumerate(s.ports):
        if spec.parse_port(p).public:
            err(("spec", "ports", i), f"{p!r} publishes the database on every interface; bind 127.0.0.1", "warning")
    if s.container_name is None:
        err(
            ("spec", "containerName"),
            f"no explicit containerName: the container will be named {name!r}; the seed asks for explicit names",
            "warning",
        )
    else:
        conv = naming_convention(name, s.engine, s.container_name)
        if conv is not None:
            err(("spec", "containerName"), conv, "warning")
    return out


def _upgrade_policy(s: spec.DatabaseInstanceSpec, err: Callable[[Path, str], None]) -> None:
    """pg-upgrade is PostgreSQL's tool; a transfer mode other than copy means nothing without it; swap is 18's."""
    p = s.policy
    if p.upgrade is spec.UpgradePolicy.PG_UPGRADE and s.engine is not spec.Engine.POSTGRES:
        err(
            ("spec", "policy", "upgrade"),
            f"pg-upgrade is PostgreSQL's pg_upgrade: use dump-restore for engine {s.engine.value}",
        )
    if p.upgrade_transfer is not spec.UpgradeTransfer.COPY and p.upgrade is not spec.UpgradePolicy.PG_UPGRADE:
        err(
            ("spec", "policy", "upgradeTransfer"),
            f"upgradeTransfer: {p.upgrade_transfer.value} is how pg_upgrade moves the files: it needs upgrade: "
            "pg-upgrade",
        )
    if p.upgrade_transfer is spec.UpgradeTransfer.SWAP and (versions.numbers(s.version) or [0])[0] < 18:
        err(
            ("spec", "policy", "upgradeTransfer"),
            f"swap is pg_upgrade's from PostgreSQL 18 on; version {s.version} has copy, link and clone",
        )


def naming_convention(name: str, engine: spec.Engine, container: str) -> str | None:
    """The seed's patterns: `<service>-<service>-1`, `<service>-<dbtype>-1`, `<service>-db`."""
    types = ("db", *(e.value for e in spec.Engine))
    ok = re.fullmatch(rf"{re.escape(name)}-{re.escape(name)}-1", container) or re.fullmatch(
        rf"[a-z0-9][a-z0-9-]*-({'|'.join(types)})(-1)?", container
    )
    if ok:
        return None
    return (
        f"container name {container!r} follows none of the seed's patterns "
        "(<service>-<service>-1, <service>-<dbtype>-1, <service>-db)"
    )


def check_all(
    instances: Sequence[spec.DatabaseInstance],
    networks: Sequence[spec.Network],
    volumes: Sequence[spec.Volume],
    consumers: Sequence[spec.Consumer],
    broken: Iterable[tuple[str, str]] = (),
    unreadable: Sequence[str] = (),
    hosts: Sequence[spec.Host] = (),
) -> list[Problem]:
    """References, uniqueness and isolation across every resource that validated on its own.

    `broken` are (kind, name) pairs declared by documents that did not validate: a reference to one of them is
    reported as depending on a broken resource, not as dangling.
    """
    out: list[Problem] = []
    broken_set = set(broken)
    net_by_name = {n.metadata.name: n for n in networks}
    vol_names = {v.metadata.name for v in volumes}
    inst_by_name = {i.metadata.name: i for i in instances}

    def ref(res: tuple[str, str, int], path: Path, target_kind: str, target: str, known: Iterable[str]) -> None:
        kind, name, idx = res
        if target in known:
            return
        if (target_kind, target) in broken_set:
            out.append(Problem(kind, name, path, f"depends on {target_kind}/{target}, which has errors", index=idx))
        elif unreadable:
            out.append(
                Problem(
                    kind,
                    name,
                    path,
                    f"{target_kind} {target!r} is not declared in any readable file "
                    f"({', '.join(unreadable)} could not be read)",
                    index=idx,
                )
            )
        else:
            out.append(Problem(kind, name, path, f"{target_kind} {target!r} is not declared", index=idx))

    for idx, inst in enumerate(instances):
        n = inst.metadata.name
        me: tuple[str, str, int] = (inst.kind, n, idx)
        for i, att in enumerate(inst.spec.networks):
            ref(me, ("spec", "networks", i, "name"), spec.Kind.NETWORK, att.name, net_by_name)
        for i, vm in enumerate(inst.spec.volumes):
            if vm.type == "volume":
                ref(me, ("spec", "volumes", i, "source"), spec.Kind.VOLUME, vm.source, vol_names)
        _dup_attachments(out, me, inst.spec.networks)
        isolated = [a.name for a in inst.spec.networks if a.name in net_by_name and net_by_name[a.name].spec.isolated]
        shared = [a.name for a in inst.spec.networks if a.name in net_by_name and not net_by_name[a.name].spec.isolated]
        if isolated and shared:
            out.append(
                Problem(
                    inst.kind,
                    n,
                    ("spec", "networks"),
                    f"sits on isolated {', '.join(isolated)} and on shared {', '.join(shared)}: "
                    "it bridges the isolation",
                    "warning",
                    idx,
                )
            )

    for idx, con in enumerate(consumers):
        n = con.metadata.name
        me = (str(con.kind), n, idx)
        for i, att in enumerate(con.spec.networks):
            ref(me, ("spec", "networks", i, "name"), spec.Kind.NETWORK, att.name, net_by_name)
        _dup_attachments(out, me, con.spec.networks)
        if con.spec.image is None and con.spec.env:
            out.append(
                Problem(
                    con.kind,
                    n,
                    ("spec", "env"),
                    "env has no effect on a consumer managed elsewhere (image: null)",
                    "warning",
                    idx,
                )
            )
        if con.spec.image is not None and con.spec.image.endswith(":latest"):
            out.append(Problem(con.kind, n, ("spec", "image"), "`latest` is not pinned", "warning", idx))
        con_nets = {a.name for a in con.spec.networks}
        for i, use in enumerate(con.spec.uses):
            before = len(out)
            ref(me, ("spec", "uses", i, "instance"), spec.Kind.DATABASE_INSTANCE, use.instance, inst_by_name)
            if len(out) > before:
                continue
            target = inst_by_name[use.instance]
            inst_nets = {a.name for a in target.spec.networks}
            if use.published is None and not con_nets & inst_nets:
                out.append(
                    Problem(
                        con.kind,
                        n,
                        ("spec", "uses", i, "instance"),
                        f"shares no network with {use.instance} ({', '.join(sorted(inst_nets))}): it cannot reach it",
                        index=idx,
                    )
                )
            if use.min_version and not versions.at_least(target.spec.version, use.min_version):
                out.append(
                    Problem(
                        con.kind,
                        n,
                        ("spec", "uses", i, "minVersion"),
                        f"needs {use.instance} {use.min_version} or later, which is declared as version "
                        f"{target.spec.version}",
                        index=idx,
                    )
                )
            if use.host_env and con.spec.image is not None and use.host_env not in con.spec.env:
                out.append(
                    Problem(
                        con.kind,
                        n,
                        ("spec", "uses", i, "hostEnv"),
                        f"{use.host_env} is not in spec.env of this managed consumer",
                        index=idx,
                    )
                )

    _placement(out, ref, instances, networks, volumes, consumers, hosts, broken_set)
    _unique(out, spec.Kind.DATABASE_INSTANCE, [i.metadata.name for i in instances])
    _unique(out, spec.Kind.CONSUMER, [c.metadata.name for c in consumers])
    _unique(out, spec.Kind.NETWORK, [x.metadata.name for x in networks])
    _unique(out, spec.Kind.VOLUME, [x.metadata.name for x in volumes])
    _unique(out, spec.Kind.HOST, [x.metadata.name for x in hosts])

    claims: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for idx, inst in enumerate(instances):
        claims[inst.container_name].append((inst.kind, inst.metadata.name, idx))
    for idx, con in enumerate(consumers):
        claims[con.container_name].append((con.kind, con.metadata.name, idx))
    for container, owners in claims.items():
        if len(owners) > 1:
            names = ", ".join(f"{k}/{nm}" for k, nm, _ in owners)
            for k, nm, idx in owners:
                out.append(
                    Problem(
                        k,
                        nm,
                        ("spec", "containerName"),
                        f"container name {container!r} is claimed by {len(owners)} resources: {names}",
                        index=idx,
                    )
                )
    _shared_data(out, instances)
    return out


def _shared_data(out: list[Problem], instances: Sequence[spec.DatabaseInstance]) -> None:
    """One data directory, one server: two declarations that mount one volume (or one host directory of one engine)
    read-write are an error at both, since one pass could start both. A `readOnly: true` mount does not count."""
    claims: dict[tuple[str, str, str | None], list[tuple[str, int, int]]] = defaultdict(list)
    for idx, inst in enumerate(instances):
        for i, vm in enumerate(inst.spec.volumes):
            if not vm.read_only:  # a volume's name is one volume whatever the engine; a path is one per engine
                claims[(vm.type, vm.source, inst.spec.host if vm.type == "bind" else None)].append(
                    (inst.metadata.name, idx, i)
                )
    for (type_, source, _host), owners in claims.items():
        if len({name for name, _, _ in owners}) < 2:
            continue
        names = ", ".join(f"DatabaseInstance/{name}" for name, _, _ in owners)
        for name, idx, i in owners:
            out.append(
                Problem(
                    spec.Kind.DATABASE_INSTANCE,
                    name,
                    ("spec", "volumes", i, "source"),
                    f"{type_} {source} is the data of {len(owners)} declarations ({names}): two database servers "
                    "must never share a data directory; give each its own, or mark a reader `readOnly: true`",
                    index=idx,
                )
            )


def _unique(out: list[Problem], kind: str, names: Sequence[str]) -> None:
    for idx, name in enumerate(names):
        if names.count(name) > 1:
            out.append(
                Problem(
                    kind, name, ("metadata", "name"), f"{kind}/{name} is declared {names.count(name)} times", index=idx
                )
            )


def _dup_attachments(out: list[Problem], me: tuple[str, str, int], atts: Sequence[spec.NetworkAttachment]) -> None:
    kind, name, idx = me
    seen: set[str] = set()
    for i, a in enumerate(atts):
        if a.name in seen:
            out.append(
                Problem(kind, name, ("spec", "networks", i, "name"), f"network {a.name} is listed twice", index=idx)
            )
        seen.add(a.name)


Ref = Callable[[tuple[str, str, int], Path, str, str, Iterable[str]], None]


SWARM_UPGRADES = frozenset({spec.UpgradePolicy.MANUAL, spec.UpgradePolicy.RECREATE})


def _on_swarm(out: list[Problem], placed: Sequence[tuple[spec.Network | spec.DatabaseInstance, bool, int]]) -> None:
    """What a resource on a Host with `mode: swarm` must be: an overlay network; an instance pinned to the node that
    holds its volumes, with what a service of dbstate can carry so far (no bind mount, no published port, no
    dump-restore or pg-upgrade cutover)."""
    for r, on_swarm, idx in placed:
        say: list[tuple[Path, str]] = []
        if not on_swarm:
            if isinstance(r, spec.DatabaseInstance) and r.spec.node is not None:
                say.append((("spec", "node"), "a node is named only on a Host with mode: swarm"))
            out += [Problem(str(r.kind), r.metadata.name, path, message, index=idx) for path, message in say]
            continue
        if isinstance(r, spec.Network):
            if r.spec.driver != "overlay":
                say.append((("spec", "driver"), "on a swarm Host a network spans the nodes: driver: overlay"))
        else:
            s = r.spec
            if s.node is None and s.volumes:
                say.append(
                    (("spec", "node"), "on a swarm Host an instance with volumes names the node that holds them")
                )
            for i, v in enumerate(s.volumes):
                if v.type == "bind":
                    say.append((("spec", "volumes", i, "type"), "a bind mount is not supported on a swarm Host yet"))
            if s.ports:
                say.append((("spec", "ports"), "published ports are not supported on a swarm Host yet"))
            if s.policy.upgrade not in SWARM_UPGRADES:
                say.append(
                    (("spec", "policy", "upgrade"), "on a swarm Host: manual or recreate (no cutover there yet)")
                )
        out += [Problem(str(r.kind), r.metadata.name, path, message, index=idx) for path, message in say]


def _placement(
    out: list[Problem],
    ref: Ref,
    instances: Sequence[spec.DatabaseInstance],
    networks: Sequence[spec.Network],
    volumes: Sequence[spec.Volume],
    consumers: Sequence[spec.Consumer],
    hosts: Sequence[spec.Host],
    broken: set[tuple[str, str]],
) -> None:
    """`spec.host`: it names a declared Host; it is required once several are declared; what a resource attaches
    to lives on its engine; a consumer uses an instance of another engine only through a published port."""
    host_names = [h.metadata.name for h in hosts]
    broken_hosts = sorted(n for k, n in broken if k == spec.Kind.HOST)
    every = tuple(hosts)
    where: dict[tuple[str, str], str] = {}
    groups: tuple[Sequence[placement.Placed], ...] = (networks, volumes, instances, consumers)
    for group in groups:
        for idx, r in enumerate(group):
            me = (str(r.kind), r.metadata.name, idx)
            if r.spec.host is not None:
                ref(me, ("spec", "host"), spec.Kind.HOST, r.spec.host, host_names)
            elif len(hosts) + len(broken_hosts) > 1:
                known = ", ".join(sorted(host_names + broken_hosts))
                why = f"{len(hosts) + len(broken_hosts)} Hosts are declared ({known})"
                if broken_hosts and len(hosts) <= 1:
                    why += f"; Host {', '.join(broken_hosts)} has errors, so which engine is meant is not known"
                out.append(Problem(me[0], me[1], ("spec",), f"spec.host is required: {why}", index=idx))
                continue
            where[(me[0], me[1])] = placement.host_of(r, every)

    def same(me: tuple[str, str, int], path: Path, kind: str, name: str, hint: str = "") -> None:
        mine, theirs = where.get((me[0], me[1])), where.get((kind, name))
        if mine is not None and theirs is not None and mine != theirs:
            message = f"{kind}/{name} lives on Host {theirs}, this one on {mine}{hint}"
            out.append(Problem(me[0], me[1], path, message, index=me[2]))

    for idx, inst in enumerate(instances):
        me = (inst.kind, inst.metadata.name, idx)
        for i, att in enumerate(inst.spec.networks):
            same(me, ("spec", "networks", i, "name"), spec.Kind.NETWORK, att.name)
        for i, vm in enumerate(inst.spec.volumes):
            if vm.type == "volume":
                same(me, ("spec", "volumes", i, "source"), spec.Kind.VOLUME, vm.source)
    by_name = {i.metadata.name: i for i in instances}
    for idx, con in enumerate(consumers):
        me = (str(con.kind), con.metadata.name, idx)
        for i, att in enumerate(con.spec.networks):
            same(me, ("spec", "networks", i, "name"), spec.Kind.NETWORK, att.name)
        for i, use in enumerate(con.spec.uses):
            target = by_name.get(use.instance)
            if target is None:
                continue
            if use.published is None:
                hint = ": to use it across engines, declare `published: ADDRESS:PORT`, a port it publishes"
                same(me, ("spec", "uses", i, "instance"), spec.Kind.DATABASE_INSTANCE, use.instance, hint)
                continue
            port = int(use.published.rpartition(":")[2])
            if not any(spec.parse_port(p).host_port == port for p in target.spec.ports):
                out.append(
                    Problem(
                        me[0],
                        me[1],
                        ("spec", "uses", i, "published"),
                        f"{use.instance} publishes no port {port} "
                        f"(its ports: {', '.join(target.spec.ports) or 'none'})",
                        index=idx,
                    )
                )
    swarm = {h.metadata.name for h in hosts if h.spec.mode == "swarm"}
    _on_swarm(out, [(r, where.get((str(r.kind), r.metadata.name)) in swarm, i) for i, r in enumerate(networks)])
    _on_swarm(out, [(r, where.get((str(r.kind), r.metadata.name)) in swarm, i) for i, r in enumerate(instances)])
    endpoints: dict[str, list[str]] = {}
    for h in hosts:
        endpoints.setdefault(h.spec.endpoint, []).append(h.metadata.name)
    for idx, h in enumerate(hosts):
        same_engine = endpoints[h.spec.endpoint]
        if len(same_engine) > 1:
            out.append(
                Problem(
                    spec.Kind.HOST,
                    h.metadata.name,
                    ("spec", "endpoint"),
                    f"{h.spec.endpoint} is the endpoint of {len(same_engine)} Hosts ({', '.join(same_engine)}): one "
                    "engine, one Host",
                    index=idx,
                )
            )
