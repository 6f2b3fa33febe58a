"""diff(desired, live) -> Plan: what would converge the engine, and what a machine must not decide alone.

Pure and level-triggered: every call computes the whole answer from the two snapshots. Rules, in short:

- Networks and volumes: created when missing; one that exists without dbstate's labels is adopted as it is (a note),
  and a driver or flag that differs from the declaration is `config-drift`. Nothing is ever recreated.
- Instances: created when missing; started when stopped; reconnected when an attachment or alias is missing;
  recreated when the spec hash differs and `policy.upgrade: recreate` (else `image-drift` / `config-drift`).
  `policy.drift: warn` turns each change into a `drift` finding; `ignore` drops it.
- A declared container name held by a container dbstate did not create is `name-conflict`: never touched.
- Consumers with `image: null` are checked and reconnected, never created or restarted (`missing-consumer`,
  `host-mismatch`); with an image they are managed like instances (recreate allowed).
- Isolated networks: a declared container attached without declaring it is disconnected; anything else attached is
  `isolation-breach`.
- Exporters (spec.monitoring): made after their instance, recreated when their endpoint or login changes (a Redis's
  too when its server restarts: it forgets its ACL users), removed alone when monitoring is turned off, left alone
  while their instance is blocked or held back.
- Swarm services (a Host with mode: swarm): the node that holds an instance's volumes unable to run it is
  `node-unavailable`, never a move; a start-first service is `config-drift`.
- Containers carrying dbstate's labels that nothing declares are orphans; removed only with prune, only when the
  whole desired state is valid, and never when deletion-protected. Volumes are never removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.core import adoption, databases, labels, live, spec, versions
from controller.core.hosts import host_of
from controller.core.labels import (
    HELPER_PREFIX,
    KEPT_SUFFIX,
    NODE,
    OLD_SUFFIX,
    container_labels,
    object_labels,
    redact_env,
)
from controller.core.plan import (
    Action,
    Adopt,
    Attach,
    Change,
    ContainerSpec,
    Detach,
    Finding,
    FindingType,
    InstanceParts,
    NetworkSpec,
    Note,
    NoteType,
    Plan,
    Recreate,
    Remove,
    Upgrade,
    VolumeSpec,
)
from controller.core.recognise import DATABASE_PORTS, looks_like_database
from controller.core.scope import Scope

STOPPED = frozenset({"created", "exited", "dead"})
# the diff's own default, for its unit tests and tools: every container may be touched. Commands always pass the
# scope the controller was configured with (commands/options.py), which is narrow by default.
UNBOUNDED = Scope(everything=True)


@dataclass
class _Builder:
    changes: list[Change]
    findings: list[Finding]
    notes: list[Note]

    def change(self, policy: spec.DriftPolicy, c: Change) -> None:
        if policy is spec.DriftPolicy.ENFORCE:
            self.changes.append(c)
        elif policy is spec.DriftPolicy.WARN:
            self.findings.append(
                Finding(
                    FindingType.DRIFT,
                    c.kind,
                    c.name,
                    f"would {c.action.value} {c.target}: {c.reason} (policy.drift: warn)",
                )
            )

    def finding(self, type_: FindingType, kind: str, name: str, message: str) -> None:
        self.findings.append(Finding(type_, kind, name, message))


def requirements(resource: spec.Workload) -> tuple[str, ...]:
    """What must exist before this container's changes: its networks, volumes, and the instances it uses."""
    out = [f"Network/{a.name}" for a in resource.spec.networks]
    if isinstance(resource, spec.DatabaseInstance):
        out += [f"Volume/{v.source}" for v in resource.spec.volumes if v.type == "volume"]
    elif isinstance(resource, spec.Exporter):
        out.append(f"DatabaseInstance/{resource.spec.instance}")
    else:
        out += [f"DatabaseInstance/{u.instance}" for u in resource.spec.uses]
    return tuple(out)


ORDER = {
    Action.ADOPT: 0,
    Action.CREATE: 0,
    Action.RECREATE: 1,
    Action.UPGRADE: 1,
    Action.START: 2,
    Action.CONNECT: 3,
    Action.DISCONNECT: 4,
    Action.REMOVE: 5,
    Action.RESTART: 6,
}
KIND_ORDER = {
    spec.Kind.NETWORK: 0,
    spec.Kind.VOLUME: 1,
    spec.Kind.DATABASE_INSTANCE: 2,
    spec.Kind.CONSUMER: 3,
    spec.Kind.EXPORTER: 4,
}


def _rank(c: Change) -> tuple[int, int, str, str]:
    leftover = isinstance(c.payload, Remove) and c.payload.leftover
    step = -1 if leftover else ORDER[c.action]  # a leftover goes before its successor
    return KIND_ORDER.get(c.kind, 9), step, c.name, c.target


def diff(
    desired: spec.DesiredState,
    observed: live.LiveState,
    *,
    prune: bool = False,
    revision: str | None = None,
    seen_volumes: Mapping[str, str | None] | None = None,
    acknowledged_lost: frozenset[str] = frozenset(),
    scope: Scope | None = None,
) -> Plan:
    """`seen_volumes`: declared volumes dbstate has seen on the engine before, with their identity when known (from
    the state store); `acknowledged_lost`: lost volumes an operator has acknowledged (`dbstate ack volume-lost
    NAME`)."""
    seen_volumes = seen_volumes or {}
    scope = scope if scope is not None else UNBOUNDED
    b = _Builder([], [], [])
    _networks(b, desired, observed)
    lost, away = _volumes(b, desired, observed, seen_volumes, acknowledged_lost)
    for inst in desired.instances:
        _instance(b, inst, observed, revision, scope, lost, away)
    _data_guard(b, desired, observed)
    for con in desired.consumers:
        _consumer(b, con, desired, observed, revision, scope)
    _exporters(b, desired, observed, revision)
    _cutover_pauses(b, desired, observed, scope)
    _isolation(b, desired, observed, scope)
    _orphans_and_strangers(b, desired, observed, prune)
    for kind, name in sorted(desired.held_back):
        b.notes.append(
            Note(NoteType.HELD_BACK, kind, name, "its declaration has errors: left alone, never orphaned or pruned")
        )
    changes = sorted(b.changes, key=_rank)
    findings = sorted(b.findings, key=lambda f: (f.type.value, f.kind, f.name, f.message))
    return Plan(tuple(changes), tuple(findings), tuple(b.notes))


def _instance(
    b: _Builder,
    inst: spec.DatabaseInstance,
    observed: live.LiveState,
    revision: str | None,
    scope: Scope,
    lost: set[str],
    away: Mapping[str, str],
) -> None:
    outside = [v.source for v in inst.spec.volumes if v.type == "bind" and not scope.allows_bind(v.source)]
    if outside:
        b.finding(
            FindingType.OUT_OF_SCOPE,
            inst.kind,
            inst.metadata.name,
            f"bind mount {outside[0]} is outside the host directories this controller may mount "
            f"({', '.join(sorted(scope.bind_roots)) or 'none allowed'}): not created, started or adopted; allow "
            "its root with --allow-bind-root",
        )
        return
    blocked = sorted({v.source for v in inst.spec.volumes if v.type == "volume"} & lost)
    if blocked:
        b.finding(
            FindingType.VOLUME_LOST,
            inst.kind,
            inst.metadata.name,
            f"not created or started on a new, empty {', '.join(blocked)}: restore the data, or accept an "
            f"empty volume with `dbstate ack volume-lost {blocked[0]}`",
        )
        return
    c = observed.container(inst.container_name)
    unseen = sorted({v.source for v in inst.spec.volumes if v.type == "volume"} & set(away))
    if unseen:
        if c is not None and c.service is not None and c.service.node_state != "ready/active":
            _service(b, inst, c, c.service)  # the node, as Swarm reports it
        else:
            b.finding(
                FindingType.NODE_UNAVAILABLE,
                inst.kind,
                inst.metadata.name,
                f"its volume {unseen[0]} is on the node labelled io.dbstate.node={away[unseen[0]]}, whose engine "
                "does not answer: nothing is created, started or moved until it does",
            )
        return
    _workload(
        b,
        inst,
        inst.spec.policy.drift,
        inst.spec.image,
        inst.spec.networks,
        observed,
        revision,
        recreate_allowed=inst.spec.policy.upgrade in RECREATING,
        scope=scope,
    )
    if c is not None and c.service is not None and c.owner == (inst.kind, inst.metadata.name):
        _service(b, inst, c, c.service)


def _service(b: _Builder, inst: spec.DatabaseInstance, c: live.Container, s: live.Service) -> None:
    """An instance's Swarm service: its node must be able to run it (dbstate never moves data to another node), and
    its updates must stop the old task first (start-first would run two servers on one volume for a moment)."""
    if s.node is not None and s.node_state != "ready/active":
        b.finding(
            FindingType.NODE_UNAVAILABLE,
            inst.kind,
            inst.metadata.name,
            f"the node labelled io.dbstate.node={s.node}, which holds its volumes, is "
            f"{s.node_state or 'not in the swarm'}: Swarm cannot run {c.name} anywhere else, and dbstate never moves "
            "its data: bring the node back (docker node update --availability active), or restore a backup on "
            "another node",
        )
    if s.update_order != "stop-first":
        b.finding(
            FindingType.CONFIG_DRIFT,
            inst.kind,
            inst.metadata.name,
            f"its service is {s.update_order}: a change made outside dbstate would start a second server on its "
            f"volume before stopping the first; put it back with `docker service update --update-order stop-first "
            f"{c.name}` (dbstate's own changes stop the old task first either way)",
        )


# the policies under which a new image of the same major is a recreate, and a new major an UPGRADE (but RECREATE)
RECREATING = frozenset({spec.UpgradePolicy.RECREATE, spec.UpgradePolicy.DUMP_RESTORE, spec.UpgradePolicy.PG_UPGRADE})
MOUNTING = frozenset({Action.CREATE, Action.START, Action.RECREATE, Action.UPGRADE})
PAST = {Action.CREATE: "created", Action.START: "started", Action.RECREATE: "recreated", Action.UPGRADE: "upgraded"}
Source = tuple[str, str]  # (volume | bind, the volume's name or the host path)


def _mounted_by(inst: spec.DatabaseInstance, actions: set[Action], observed: live.LiveState) -> set[Source]:
    """The data a change of `inst` would mount read-write: a start mounts what its container has (whatever the
    declaration says now); a create, recreate or upgrade what the declaration names."""
    out: set[Source] = set()
    if actions & {Action.CREATE, Action.RECREATE, Action.UPGRADE}:
        out |= {(v.type, v.source) for v in inst.spec.volumes if not v.read_only}
    c = observed.container(inst.container_name)
    if Action.START in actions and c is not None:
        out |= {(m.type, m.source.rstrip("/")) for m in c.mounts if m.type in ("volume", "bind") and m.rw}
    return out


def _data_guard(b: _Builder, desired: spec.DesiredState, observed: live.LiveState) -> None:
    """Two database servers never share a data directory, whoever made them, and this holds for the whole plan: a
    create, start, recreate or upgrade that would mount a volume or host directory that another container mounts
    (one that runs or could be started), or that an earlier change of this same plan mounts, is taken out of the plan
    and is a blocking `volume-in-use` finding. Instances are taken in name order, so the same input holds back the
    same one."""
    planned: dict[Source, str] = {}  # what this plan already mounts, and the container it mounts it in
    for inst in sorted(desired.instances, key=lambda i: i.metadata.name):
        key = f"{inst.kind}/{inst.metadata.name}"
        mounting = [c for c in b.changes if c.key == key and c.action in MOUNTING]
        if not mounting:
            continue
        sources = _mounted_by(inst, {c.action for c in mounting}, observed)
        mine = {inst.container_name, inst.container_name + OLD_SUFFIX}
        holder: tuple[str, str, str, str] | None = None
        for type_, source in sorted(sources):
            if (type_, source) in planned:
                name = planned[(type_, source)]
                holder = (type_, source, name, f"{name}, which this plan also creates or starts")
                break
            for other in observed.containers:
                if other.name in mine or other.state in ("dead", "removing"):
                    continue
                if any(m.type == type_ and m.source.rstrip("/") == source and m.rw for m in other.mounts):
                    holder = (type_, source, other.name, f"{other.name} ({other.state})")
                    break
            if holder:
                break
        if holder is None:
            planned.update(dict.fromkeys(sources, inst.container_name))
            continue
        type_, source, other_name, who = holder
        b.changes[:] = [c for c in b.changes if c not in mounting]
        b.finding(
            FindingType.VOLUME_IN_USE,
            inst.kind,
            inst.metadata.name,
            f"{type_} {source} is mounted by {who}: {inst.container_name} is not "
            f"{' or '.join(sorted({PAST[c.action] for c in mounting}))}, since two database servers must never "
            f"share a data directory. If {other_name} is an old copy, stop and remove it (its volumes stay); "
            "otherwise declare another volume",
        )


def _networks(b: _Builder, desired: spec.DesiredState, observed: live.LiveState) -> None:
    for net in desired.networks:
        name = net.metadata.name
        found = observed.network(name)
        if found is None:
            b.changes.append(
                Change(
                    Action.CREATE,
                    net.kind,
                    name,
                    name,
                    "declared, not on the engine",
                    NetworkSpec(net.spec.driver, net.spec.internal, object_labels(net)),
                )
            )
            continue
        _adopted(b, net, found)
        diffs = []
        if found.driver != net.spec.driver:
            diffs.append(f"driver is {found.driver}, declared {net.spec.driver}")
        if found.internal != net.spec.internal:
            diffs.append(f"internal is {str(found.internal).lower()}, declared {str(net.spec.internal).lower()}")
        if diffs:
            b.finding(
                FindingType.CONFIG_DRIFT,
                net.kind,
                name,
                "; ".join(diffs) + ": a network is never recreated on its own (it would cut every container "
                "off); recreate it by hand in a maintenance window",
            )


def _adopted(b: _Builder, resource: spec.Network | spec.Volume, found: live.Network | live.Volume) -> None:
    """A declared network or volume that exists without dbstate's labels is taken as it is, never recreated."""
    if not found.managed:
        b.notes.append(
            Note(
                NoteType.ADOPTED,
                resource.kind,
                resource.metadata.name,
                f"exists without dbstate's labels (driver {found.driver}): adopted as it is",
            )
        )


def _volumes(
    b: _Builder,
    desired: spec.DesiredState,
    observed: live.LiveState,
    seen: Mapping[str, str | None],
    acked: frozenset[str],
) -> tuple[set[str], dict[str, str]]:
    """Create what is missing, except a volume seen before: that one is lost, and is never recreated empty. A volume
    seen before that is now another one (same name, other labels: `labels.volume_identity`) is lost too: its data is
    not there. On a swarm, a missing volume of a node that is down, or whose engine does not answer, is away (by
    node), not lost: nothing is known of it. The lost ones, and the away ones."""
    lost: set[str] = set()
    # on a swarm, a volume lives on the node of the instances that mount it (the runtime makes it there)
    node_of = {v.source: i.spec.node for i in desired.instances if i.spec.node for v in i.spec.volumes}
    down = set(observed.unseen_nodes) | {
        c.service.node
        for c in observed.containers
        if c.service and c.service.node and c.service.node_state != "ready/active"
    }
    away: dict[str, str] = {}
    for vol in desired.volumes:
        name = vol.metadata.name
        found = observed.volume(name)
        was = seen.get(name)
        if found is None and name in node_of and node_of[name] in down:
            away[name] = node_of[name]
            b.finding(
                FindingType.NODE_UNAVAILABLE,
                vol.kind,
                name,
                f"is on the node labelled io.dbstate.node={node_of[name]}, which is down or does not answer: it "
                "cannot be seen, and nothing is made in its place",
            )
            continue
        if found is not None and was and found.identity != was and name not in acked:
            lost.add(name)
            b.finding(
                FindingType.VOLUME_LOST,
                vol.kind,
                name,
                "is not the volume seen before (it was removed and made again: its labels differ): its data is "
                "elsewhere or gone, and nothing is started on it; restore the data, or accept this volume with "
                f"`dbstate ack volume-lost {name}`",
            )
            continue
        if found is None and name in seen and name not in acked:
            lost.add(name)
            b.finding(
                FindingType.VOLUME_LOST,
                vol.kind,
                name,
                "was on the engine before and has disappeared: it is not recreated empty; restore it, or accept "
                f"an empty one with `dbstate ack volume-lost {name}`",
            )
            continue
        if found is None:
            reason = "declared, not on the engine" + (" (its loss was acknowledged)" if name in acked else "")
            node = {NODE: node_of[name]} if name in node_of else {}
            made = VolumeSpec(vol.spec.driver, {**object_labels(vol), **node})
            b.changes.append(Change(Action.CREATE, vol.kind, name, name, reason, made))
            continue
        _adopted(b, vol, found)
        if found.driver != vol.spec.driver:
            b.finding(
                FindingType.CONFIG_DRIFT,
                vol.kind,
                name,
                f"driver is {found.driver}, declared {vol.spec.driver}: a volume is never recreated",
            )
    return lost, away


def container_spec(resource: spec.Workload, revision: str | None) -> ContainerSpec:
    """The container of `resource` as the plan shows it (env redacted), labelled with `revision`."""
    s = resource.spec
    instance = None
    if isinstance(resource, spec.DatabaseInstance):
        i = resource.spec
        instance = InstanceParts(
            {v.source: v.target for v in i.volumes}, tuple(i.command), tuple(i.ports), i.restart_policy.value
        )
    return ContainerSpec(
        s.image or "",
        {a.name: tuple(a.aliases) for a in s.networks},
        redact_env(s.env),
        container_labels(resource, revision),
        instance,
    )


def _workload(
    b: _Builder,
    resource: spec.Workload,
    policy: spec.DriftPolicy,
    image: str | None,
    networks: Iterable[spec.NetworkAttachment],
    observed: live.LiveState,
    revision: str | None,
    *,
    recreate_allowed: bool,
    scope: Scope = UNBOUNDED,
) -> None:
    """A container dbstate creates and owns: an instance, a consumer with an image, an exporter. `scope`: what it
    may take over that someone else made (policy.adopt: in-place)."""
    kind, name, cname = resource.kind, resource.metadata.name, resource.container_name
    needs = requirements(resource)
    for other in observed.owned_by(kind, name):
        if other.name == cname:
            continue
        if other.name == cname + OLD_SUFFIX:
            leftover = "left over from an interrupted recreate; its volumes are kept"
            b.change(policy, Change(Action.REMOVE, kind, name, other.name, leftover, Remove(leftover=True), needs))
        elif other.name.startswith(cname + KEPT_SUFFIX) and other.state not in ("running", "restarting"):
            data = ", ".join(f"{m.type} {m.source}" for m in other.mounts) or "no mounts"
            b.notes.append(
                Note(
                    NoteType.KEPT,
                    kind,
                    name,
                    f"{other.name} ({other.image}, on {data}) is the server from before an upgrade, kept stopped: "
                    "remove it and its data by hand once the new one is trusted",
                )
            )
        else:
            b.finding(
                FindingType.CONFIG_DRIFT,
                kind,
                name,
                f"container {other.name} carries this declaration's labels but the declared name is {cname}: "
                "rename or remove it by hand (two servers must never share a volume)",
            )
            return
    c = observed.container(cname)
    if c is None:
        made = container_spec(resource, revision)
        b.change(policy, Change(Action.CREATE, kind, name, cname, "declared, no container", made, needs, resource))
        return
    if c.owner != (kind, name):
        verdict = _adopt(b, resource, policy, c, needs, scope)
        if verdict is None:
            who = f"{c.owner[0]}/{c.owner[1]}" if c.owner else adoption.creator(c)
            hint = "" if c.owner else ", or take it over as it is with policy.adopt: in-place (`dbstate import`)"
            b.finding(
                FindingType.NAME_CONFLICT,
                kind,
                name,
                f"container {cname} exists but was created by {who}: it is left alone; rename or remove it, "
                f"or change containerName{hint}",
            )
        if verdict != "adopted":
            return
        c = dataclasses.replace(
            c, labels={**c.labels, labels.SPEC_HASH: spec.spec_hash(resource), adoption.ADOPTED: "true"}
        )
    if c.labels.get(adoption.ADOPTED):
        _co_managed(b, resource, c)
    if isinstance(resource, spec.DatabaseInstance):
        if _reverted(b, resource, c, observed) or _interrupted(b, resource, c, observed):
            return
        jump = major_jump(resource, c)
        if jump is not None and resource.spec.policy.upgrade in RECREATING - {spec.UpgradePolicy.RECREATE}:
            if not _still_composed(b, resource, c, jump):
                _dump_restore(b, resource, policy, c, jump, needs, revision)
            return
        moved = _data_moved(b, resource, c)  # a new container would start on other (empty) data
        if recreate_allowed and jump is not None:  # ...or refuse the data it finds
            _major_upgrade(b, resource, c, jump)
        recreate_allowed = recreate_allowed and not moved and jump is None
    want_hash = spec.spec_hash(resource)
    if c.labels.get(labels.SPEC_HASH) != want_hash:
        if recreate_allowed and c.labels.get(adoption.ADOPTED):
            b.finding(
                FindingType.CONFIG_DRIFT,
                kind,
                name,
                f"the declaration changed since {cname} was adopted: dbstate does not recreate a container it "
                "adopted until a verified backup of it exists; recreate it by hand after a backup, or revert the "
                "declaration",
            )
        elif recreate_allowed:
            b.change(
                policy,
                Change(
                    Action.RECREATE,
                    kind,
                    name,
                    cname,
                    "the declaration changed (spec hash differs); volumes are kept",
                    Recreate(
                        container_spec(resource, revision),
                        from_hash=c.labels.get(labels.SPEC_HASH),
                        to_hash=want_hash,
                        from_image=c.image,
                        # a database is backed up before it is recreated (engine/guard.py): the change fails if not
                        backup_first=isinstance(resource, spec.DatabaseInstance)
                        and resource.spec.policy.backup.before_change,
                    ),
                    needs,
                    resource,
                ),
            )
            return
        if image is not None and c.image != image:
            b.finding(
                FindingType.IMAGE_DRIFT,
                kind,
                name,
                f"runs {c.image}, declared {image}; policy.upgrade is manual: upgrade by hand "
                "(back up first), or set policy.upgrade: recreate",
            )
        else:
            b.finding(
                FindingType.CONFIG_DRIFT,
                kind,
                name,
                "the declaration changed since the container was created (spec hash differs); "
                "policy.upgrade is manual: recreate by hand, or set policy.upgrade: recreate",
            )
    if c.state in STOPPED:
        b.change(policy, Change(Action.START, kind, name, cname, f"container is {c.state}", None, needs))
    elif c.state == "paused":
        b.finding(FindingType.CONFIG_DRIFT, kind, name, paused(cname))
    _attachments(b, resource, policy, networks, c)


def _adopt(
    b: _Builder,
    resource: spec.Workload,
    policy: spec.DriftPolicy,
    c: live.Container,
    needs: tuple[str, ...],
    scope: Scope,
) -> str | None:
    """policy.adopt: in-place and a container nobody else claims: "adopted" when it matches, "blocked" (with a
    finding saying what differs, or that the container is outside the controller's scope) when not; None when it is
    not a candidate (a name-conflict)."""
    if not isinstance(resource, spec.DatabaseInstance) or c.owner is not None:
        return None
    if resource.spec.policy.adopt is not spec.AdoptPolicy.IN_PLACE:
        return None
    kind, name = resource.kind, resource.metadata.name
    if not scope.allows(c):  # taking it over would start, connect and later recreate a container it may not touch
        b.finding(
            FindingType.OUT_OF_SCOPE,
            kind,
            name,
            f"container {c.name} was created by {adoption.creator(c)} and is outside the scope this controller may "
            f"change ({scope.describe()}): not adopted; allow it with --allow-compose-project or --allow-label, or "
            "take it over with `dbstate import` (which records what it adopts)",
        )
        return "blocked"
    differs = adoption.differences(resource, c)
    if differs:
        b.finding(
            FindingType.ADOPTION_BLOCKED,
            kind,
            name,
            f"container {c.name} was created by {adoption.creator(c)} and differs from the declaration: "
            f"{'; '.join(differs)}. Nothing is recreated: make the declaration match (`dbstate import` writes one "
            "that does)",
        )
        return "blocked"
    adopt = Adopt(c.id, spec.spec_hash(resource))
    reason = f"created by {adoption.creator(c)}; matches the declaration: taken over as it is, not recreated"
    b.change(policy, Change(Action.ADOPT, kind, name, c.name, reason, adopt, needs))
    return "adopted"


def moved_mounts(inst: spec.DatabaseInstance, c: live.Container) -> list[tuple[live.Mount, spec.VolumeMount | None]]:
    """The data mounts of `c` that the declaration puts elsewhere (with where), or drops (None): a container made
    from the declaration would not find its data there."""
    declared = {m.target: m for m in inst.spec.volumes}
    out: list[tuple[live.Mount, spec.VolumeMount | None]] = []
    for m in sorted(c.mounts, key=lambda m: m.destination):
        want = declared.get(m.destination)
        if m.type in ("volume", "bind") and (
            want is None or (want.type, want.source) != (m.type, m.source.rstrip("/"))
        ):
            out.append((m, want))
    return out


def _with_new_target(
    inst: spec.DatabaseInstance, c: live.Container, moves: list[tuple[live.Mount, spec.VolumeMount | None]]
) -> list[tuple[live.Mount, spec.VolumeMount | None]]:
    """An upgrade's data mount that the declaration drops, paired with the one new volume it mounts elsewhere: the
    new major's image may want its data at another place (PostgreSQL 18's images: the volume at /var/lib/postgresql,
    the cluster in 18/docker below it, where 17's was mounted at /var/lib/postgresql/data)."""
    dropped = [m for m, want in moves if want is None and m.type == "volume"]
    held = {m.destination for m in c.mounts}
    added = [v for v in inst.spec.volumes if v.type == "volume" and v.target not in held]
    if len(dropped) != 1 or len(added) != 1:
        return moves
    return [(m, added[0] if m is dropped[0] else want) for m, want in moves]


def _data_moved(b: _Builder, inst: spec.DatabaseInstance, c: live.Container) -> bool:
    moved = [
        f"{m.destination} holds {m.type} {m.source}, "
        + (f"declared {want.type} {want.source}" if want else "which the declaration drops")
        for m, want in moved_mounts(inst, c)
    ]
    if moved:
        b.finding(
            FindingType.DATA_MOVED,
            inst.kind,
            inst.metadata.name,
            f"{'; '.join(moved)}: a container made from the declaration would start without its data, so it is not "
            f"recreated. Move the data with `dbstate migrate-volume {inst.metadata.name}` (stops it, copies, "
            "verifies, recreates it on the declared mounts; the old data stays), or revert the declaration",
        )
    return bool(moved)


def major_jump(inst: spec.DatabaseInstance, c: live.Container) -> tuple[str, str] | None:
    """(the data's major, the declared major) when they differ. The data's major is taken from the image that runs
    now (its tag)."""
    two_part = databases.of(inst.spec.engine).two_part_versions
    tags = [versions.split_image(image)[1] for image in (c.image, inst.spec.image)]
    found = [versions.tag_version(t) if t else None for t in tags]
    if c.image == inst.spec.image or found[0] is None or found[1] is None:
        return None
    was, new = versions.major(two_part, found[0]), versions.major(two_part, found[1])
    return None if was == new else (was, new)


def _data_of(c: live.Container) -> list[tuple[str, str, str]]:
    return sorted((m.type, m.source.rstrip("/"), m.destination) for m in c.mounts if m.type in ("volume", "bind"))


def _reverted(b: _Builder, inst: spec.DatabaseInstance, c: live.Container, observed: live.LiveState) -> bool:
    """The declaration names a server an upgrade kept (its image and its data) while another one runs: a reverted
    upgrade. Nothing is recreated (the declared volume holds the old data, which the running server would be
    replaced onto blindly): going back is `dbstate rollback`, which checks for writes since the cutover first."""
    declared = sorted((m.type, m.source, m.target) for m in inst.spec.volumes)
    if c.image == inst.spec.image:  # the same server on other data (a restore to a new volume): data-moved says it
        return False
    kept = [
        k
        for k in observed.owned_by(inst.kind, inst.metadata.name)
        if k.name.startswith(inst.container_name + KEPT_SUFFIX)
        and k.image == inst.spec.image
        and _data_of(k) == declared
    ]
    if not kept:
        return False
    b.finding(
        FindingType.ROLLBACK,
        inst.kind,
        inst.metadata.name,
        f"the declaration names {kept[-1].name} ({kept[-1].image}), the server an upgrade kept, while {c.name} runs "
        f"{c.image}: nothing is recreated. Go back to it with `dbstate rollback {inst.metadata.name}` (refused while "
        f"{c.name} holds writes made since the cutover; backs it up first), or restore the declaration of {c.name}",
    )
    return True


def _still_composed(b: _Builder, inst: spec.DatabaseInstance, c: live.Container, jump: tuple[str, str]) -> bool:
    """An upgrade keeps the old server: while compose still claims it, a `docker compose up` of the old file would
    start it again beside the new one, under the same service alias. Compose is retired first, on the old data."""
    command = adoption.retire_command(c)
    if command is None:
        return False
    b.finding(
        FindingType.MAJOR_UPGRADE,
        inst.kind,
        inst.metadata.name,
        f"{c.name} runs {inst.spec.engine.value} {jump[0]} and compose still manages it (project "
        f"{c.labels.get(adoption.COMPOSE_PROJECT)}): not upgraded to {jump[1]}, since compose could start the old "
        "server again beside the new one. First retire it from compose with the declaration as it was: revert the "
        f"image and volume change, run `{command}` (keeps every volume) and remove the service from its compose "
        "file; dbstate then makes its own container on the same data. Then upgrade",
    )
    return True


def _interrupted(b: _Builder, inst: spec.DatabaseInstance, c: live.Container, observed: live.LiveState) -> bool:
    """The declared server alone on a cutover's private network: an upgrade or a restore to a new volume stopped (its
    process killed) after the new server started and before its data was checked. Connecting it would let consumers
    onto data nobody checked (a dump-restore may be half restored): a human decides."""
    private = [a.network for a in c.networks if a.network.startswith(HELPER_PREFIX)]
    if not private:
        return False
    kept = sorted(k.name for k in observed.owned_by(inst.kind, inst.metadata.name) if KEPT_SUFFIX in k.name)
    old = kept[-1] if kept else "the old server"
    b.finding(
        FindingType.INTERRUPTED,
        inst.kind,
        inst.metadata.name,
        f"{c.name} ({c.image}) is alone on {private[0]}: the cutover that made it was interrupted before its data was "
        f"checked, and nothing reaches it. {old} is stopped on the old data. To go back: revert the commit, then "
        f"`dbstate rollback {inst.metadata.name} --discard-writes` (nothing was written since: no client reached it). "
        f"To go on: check its data, then connect it to its networks by hand and `docker network disconnect "
        f"{private[0]} {c.name}`",
    )
    return True


def _major_upgrade(b: _Builder, inst: spec.DatabaseInstance, c: live.Container, jump: tuple[str, str]) -> None:
    """A new major version is never a plain recreate: the new server refuses (PostgreSQL) or must convert (MariaDB)
    the old data directory."""
    was, new = jump
    b.finding(
        FindingType.MAJOR_UPGRADE,
        inst.kind,
        inst.metadata.name,
        f"{c.name} runs {c.image} ({inst.spec.engine.value} {was}); the declaration asks for {inst.spec.image} "
        f"({new}): a recreate would start {new} on data written by {was}, which it refuses or must convert. Not "
        "recreated: set policy.upgrade: dump-restore and declare a new volume for the data (the old one is kept), "
        "or upgrade by hand after `dbstate backup`, or revert the image",
    )


def _dump_restore(
    b: _Builder,
    inst: spec.DatabaseInstance,
    policy: spec.DriftPolicy,
    c: live.Container,
    jump: tuple[str, str],
    needs: tuple[str, ...],
    revision: str | None,
) -> None:
    """policy.upgrade: dump-restore or pg-upgrade across majors: the data goes from the old server into a new server
    on the new volume the declaration names; the old container and volume are kept (engine/upgrading.py)."""
    was, new = jump
    method = inst.spec.policy.upgrade
    moves = _with_new_target(inst, c, moved_mounts(inst, c))
    bad = [m for m, want in moves if want is None or want.type != "volume"]
    if not moves or bad:
        suggestion = f"{inst.metadata.name}-data-v{new}"
        b.finding(
            FindingType.MAJOR_UPGRADE,
            inst.kind,
            inst.metadata.name,
            f"{c.name} runs {inst.spec.engine.value} {was}, the declaration asks for {new} with policy.upgrade: "
            f"{method.value}, which writes the new major's data into a new volume and keeps the old data as it is: "
            f"declare a new named volume for the data (e.g. {suggestion}) in the same commit. Nothing is changed",
        )
        return
    transfer = inst.spec.policy.upgrade_transfer if method is spec.UpgradePolicy.PG_UPGRADE else None
    details = Upgrade(
        container_spec(inst, revision),
        from_image=c.image,
        from_major=was,
        to_major=new,
        moves={m.destination: (m.source, want.source) for m, want in moves if want is not None},
        method=method.value,
        transfer=transfer.value if transfer else None,
    )
    into = ", ".join(want.source for _m, want in moves if want is not None)
    if transfer is None:
        how = f"dump from {c.image}, restore into {into}; the old container and volume are kept"
    else:
        how = f"pg_upgrade --{transfer.value} into {into} ({TRANSFER_SAYS[transfer]})"
    reason = f"{inst.spec.engine.value} {was} -> {new}: {how}"
    b.change(policy, Change(Action.UPGRADE, inst.kind, inst.metadata.name, c.name, reason, details, needs, inst))


# what each pg_upgrade transfer mode means for the way back, as the plan says it
TRANSFER_SAYS = {
    spec.UpgradeTransfer.COPY: "the old major's binaries are copied from the old image into the upgrade's helper; "
    "the old container and volume are kept unchanged: `dbstate rollback` goes back",
    spec.UpgradeTransfer.CLONE: "reflinks, on a filesystem that has them; the old major's binaries come from the old "
    "image; the old container and volume are kept unchanged: `dbstate rollback` goes back",
    spec.UpgradeTransfer.LINK: "hard links: seconds at any size, but once the new server has started the old cluster "
    "can never start again: no rollback, only the backup taken first; the old major's binaries come from the old image",
    spec.UpgradeTransfer.SWAP: "the old files moved into the new cluster: the old cluster is gone, no rollback, only "
    "the backup taken first; the old major's binaries come from the old image",
}


def paused(container: str) -> str:
    """A declared container found paused: dbstate does not unpause what it cannot tell it paused itself."""
    return (
        f"container {container} is paused: unpause it by hand (`docker unpause {container}`). An upgrade pauses its "
        "database's consumers for the cutover and resumes them after it: one left paused is from a cutover that did "
        "not finish, or a human's"
    )


def _cutover_pauses(b: _Builder, desired: spec.DesiredState, observed: live.LiveState, scope: Scope) -> None:
    """An upgrade pauses the running containers of the consumers that use the instance on this engine, from before
    the old server stops until the new one holds every row on its networks: no write goes to a server that is about
    to be dumped, nor to one whose data is not in place yet. A consumer outside the scope is not touched (its
    writes fail meanwhile: the new server is not on any network it shares until the cutover)."""
    for i, change in enumerate(b.changes):
        if change.action is not Action.UPGRADE or not isinstance(change.payload, Upgrade):
            continue
        paused = []
        for con in desired.consumers:
            if not any(u.instance == change.name and u.published is None for u in con.spec.uses):
                continue
            c = observed.container(con.container_name)
            if c is not None and c.state == "running" and (c.owner == (con.kind, con.metadata.name) or scope.allows(c)):
                paused.append(c.name)
        if paused:
            payload = dataclasses.replace(change.payload, consumers=tuple(sorted(paused)))
            reason = f"{change.reason}; {', '.join(payload.consumers)} paused for the cutover"
            b.changes[i] = dataclasses.replace(change, reason=reason, payload=payload)


def recreate_change(inst: spec.DatabaseInstance, revision: str | None, reason: str) -> Change:
    """The recreate of `inst` as apply runs it (stop, rename, create from the declaration, start, remove the old)."""
    return Change(
        Action.RECREATE,
        inst.kind,
        inst.metadata.name,
        inst.container_name,
        reason,
        container_spec(inst, revision),
        requirements(inst),
        inst,
    )


def _co_managed(b: _Builder, resource: spec.Workload, c: live.Container) -> None:
    command = adoption.retire_command(c)
    if command is None:
        return
    b.finding(
        FindingType.CO_MANAGED,
        resource.kind,
        resource.metadata.name,
        f"compose also manages {c.name} (project {c.labels.get(adoption.COMPOSE_PROJECT)}): a `docker compose up` "
        f"there could recreate it behind dbstate's back. Retire it from compose with `{command}` (stops and "
        "removes the container, keeps every volume; dbstate then creates its own on the same data) and remove "
        "the service from the compose file; never `down -v`",
    )


def _attachments(
    b: _Builder,
    resource: spec.Workload,
    policy: spec.DriftPolicy,
    networks: Iterable[spec.NetworkAttachment],
    c: live.Container,
) -> None:
    for att in networks:
        have = c.attachment(att.name)
        missing = [a for a in att.aliases if have is not None and a not in have.aliases]
        if have is not None and not missing:
            continue
        if have is None:
            reason = f"not attached to {att.name}"
            details = Attach(att.name, tuple(att.aliases))
        else:
            reason = f"alias {', '.join(missing)} missing on {att.name}"
            # an endpoint's aliases cannot change: disconnect, then connect, keeping the aliases it had (compose's
            # service name): reconnecting must not take a name away
            kept = tuple(a for a in have.aliases if a not in att.aliases)
            details = Attach(att.name, (*att.aliases, *kept), reconnect=True)
        change = Change(
            Action.CONNECT, resource.kind, resource.metadata.name, c.name, reason, details, requirements(resource)
        )
        b.change(policy, change)


def _consumer(
    b: _Builder,
    con: spec.Consumer,
    desired: spec.DesiredState,
    observed: live.LiveState,
    revision: str | None,
    scope: Scope,
) -> None:
    if con.spec.image is not None:
        _workload(
            b,
            con,
            spec.DriftPolicy.ENFORCE,
            con.spec.image,
            con.spec.networks,
            observed,
            revision,
            recreate_allowed=True,
        )
        c = observed.container(con.container_name)
        if c is not None and c.owner == (con.kind, con.metadata.name):
            _host_checks(b, con, desired, c)
        return
    c = observed.container(con.container_name)
    if c is None:
        ref = con.spec.compose
        what = (
            f"no container of compose project {ref.project}, service {ref.service} exists"
            if ref is not None and con.spec.container_name is None
            else f"container {con.container_name} does not exist"
        )
        b.finding(
            FindingType.MISSING_CONSUMER,
            con.kind,
            con.metadata.name,
            f"{what} (it is managed elsewhere: image is null)",
        )
        return
    if scope.allows(c):
        _attachments(b, con, spec.DriftPolicy.ENFORCE, con.spec.networks, c)
    else:
        _out_of_scope(b, con, c, scope)
    if c.state == "paused":
        b.finding(FindingType.CONFIG_DRIFT, con.kind, con.metadata.name, paused(c.name))
    _host_checks(b, con, desired, c)


def _exporters(b: _Builder, desired: spec.DesiredState, observed: live.LiveState, revision: str | None) -> None:
    """Each monitored instance's exporter, made and kept like a consumer with an image (it holds no data: a changed
    endpoint or login recreates it); the exporter of an instance whose monitoring is off is removed, nothing else.
    While its instance cannot be made or changed (a blocking finding, a held-back declaration), neither is it."""
    blocked = {f.name for f in b.findings if f.kind == spec.Kind.DATABASE_INSTANCE and f.type.blocks}
    blocked |= {f.name for f in b.findings if f.type in (FindingType.OUT_OF_SCOPE, FindingType.VOLUME_LOST)}
    restarting = {
        c.name for c in b.changes if c.kind == spec.Kind.DATABASE_INSTANCE and c.action in MOUNTING | {Action.RESTART}
    }
    for exp in desired.exporters:
        if exp.spec.instance in blocked:
            continue
        if exp.spec.instance in restarting and _login_forgotten(b, exp, observed, revision):
            continue
        policy = spec.DriftPolicy.ENFORCE
        _workload(b, exp, policy, exp.spec.image, exp.spec.networks, observed, revision, recreate_allowed=True)
    monitored = {e.metadata.name for e in desired.exporters}
    declared = {i.metadata.name for i in desired.instances}
    for c in observed.containers:
        name = c.owner[1] if c.managed and c.owner is not None and c.owner[0] == spec.Kind.EXPORTER else None
        if name in declared and name not in monitored:
            reason = "spec.monitoring is off: the exporter goes, the instance and its data stay"
            b.changes.append(Change(Action.REMOVE, spec.Kind.EXPORTER, name, c.name, reason, Remove()))


def _login_forgotten(b: _Builder, exp: spec.Exporter, observed: live.LiveState, revision: str | None) -> bool:
    """A server about to restart that keeps its logins in memory only (Redis' ACL users without an aclfile): its
    up-to-date exporter is recreated after it, which makes the login again. True when that change was added."""
    c = observed.container(exp.container_name)
    want = spec.spec_hash(exp)
    if databases.of(exp.spec.engine).monitor_login_persists or c is None or c.owner != (exp.kind, exp.metadata.name):
        return False
    if c.labels.get(labels.SPEC_HASH) != want:
        return False  # recreated anyway, for its own change
    reason = "its server restarts and forgets the monitoring login (kept in memory only): it is made again"
    payload = Recreate(container_spec(exp, revision), want, want, c.image, backup_first=False)
    b.changes.append(
        Change(Action.RECREATE, exp.kind, exp.metadata.name, c.name, reason, payload, requirements(exp), exp)
    )
    return True


def _out_of_scope(b: _Builder, con: spec.Consumer, c: live.Container, scope: Scope) -> None:
    b.finding(
        FindingType.OUT_OF_SCOPE,
        con.kind,
        con.metadata.name,
        f"container {c.name} was not made by dbstate and is outside the scope it may change ({scope.describe()}): "
        "it is only checked, never connected, disconnected, started or removed; allow it with "
        "--allow-compose-project or --allow-label",
    )


def _host_checks(b: _Builder, con: spec.Consumer, desired: spec.DesiredState, c: live.Container) -> None:
    instances = {i.metadata.name: i for i in desired.instances}
    for use in con.spec.uses:
        inst = instances.get(use.instance)
        if use.host_env is None or c.env is None or (inst is None and use.published is None):
            continue
        if use.published is not None:  # on another engine: through its published port, by that engine's address
            aliases = [use.published.rpartition(":")[0]]
        else:
            assert inst is not None
            shared = {a.name for a in con.spec.networks} & {a.name for a in inst.spec.networks}
            aliases = sorted(
                {al for a in inst.spec.networks if a.name in shared for al in a.aliases} | {inst.container_name}
            )
        value = c.env.get(use.host_env)
        if value is None:
            b.finding(
                FindingType.HOST_MISMATCH,
                con.kind,
                con.metadata.name,
                f"{use.host_env} is not set in container {c.name}; it should name {use.instance} "
                f"({', '.join(aliases)})",
            )
            continue
        host = host_of(value)
        if host not in aliases:
            b.finding(
                FindingType.HOST_MISMATCH,
                con.kind,
                con.metadata.name,
                f"{use.host_env} names host {host or '(none)'!r}, which is not {use.instance} "
                f"(expected one of {', '.join(aliases)})",
            )


def _isolation(b: _Builder, desired: spec.DesiredState, observed: live.LiveState, scope: Scope) -> None:
    isolated = {n.metadata.name for n in desired.networks if n.spec.isolated}
    if not isolated:
        return
    declared: dict[str, tuple[spec.DatabaseInstance | spec.Consumer, spec.DriftPolicy]] = {}
    for inst in desired.instances:
        declared[inst.container_name] = (inst, inst.spec.policy.drift)
    for con in desired.consumers:
        declared[con.container_name] = (con, spec.DriftPolicy.ENFORCE)
    for c in observed.containers:
        if c.name in desired.held_back_containers:
            continue
        for att in c.networks:
            if att.network not in isolated:
                continue
            owner = declared.get(c.name)
            if owner is not None:
                resource, policy = owner
                if any(a.name == att.network for a in resource.spec.networks):
                    continue
                if c.owner is None and isinstance(resource, spec.DatabaseInstance):
                    continue  # a name conflict: reported already, never touched
                if not scope.allows(c):
                    b.finding(
                        FindingType.ISOLATION_BREACH,
                        spec.Kind.NETWORK,
                        att.network,
                        f"container {c.name} is attached to isolated {att.network} without declaring it, and is "
                        "outside dbstate's scope: disconnect it by hand, or allow it",
                    )
                    continue
                b.change(
                    policy,
                    Change(
                        Action.DISCONNECT,
                        resource.kind,
                        resource.metadata.name,
                        c.name,
                        f"attached to isolated {att.network} without declaring it",
                        Detach(att.network),
                    ),
                )
            else:
                b.finding(
                    FindingType.ISOLATION_BREACH,
                    spec.Kind.NETWORK,
                    att.network,
                    f"container {c.name} is attached to isolated {att.network} but is not declared on it: "
                    f"disconnect it (docker network disconnect {att.network} {c.name}) or declare it",
                )


def _orphans_and_strangers(b: _Builder, desired: spec.DesiredState, observed: live.LiveState, prune: bool) -> None:
    opaque = desired.unreadable_files
    if opaque:
        b.notes.append(
            Note(
                NoteType.HELD_BACK,
                "File",
                ", ".join(opaque),
                "could not be read, so what it declares is unknown: no orphan is reported or pruned",
            )
        )
    declared_names = {i.container_name for i in desired.instances} | {c.container_name for c in desired.consumers}
    declared_keys: set[tuple[str, str]] = {(i.kind, i.metadata.name) for i in desired.instances}
    declared_keys |= {(c.kind, c.metadata.name) for c in desired.consumers}
    # an exporter belongs to its instance: while the instance is declared, _exporters decides about it
    declared_keys |= {(spec.Kind.EXPORTER, i.metadata.name) for i in desired.instances}
    db_names = {i.container_name for i in desired.instances}
    for c in observed.containers:
        engine = looks_like_database(c)
        if engine is not None:
            for p in c.ports:
                if p.public and (c.name in db_names or p.container_port in DATABASE_PORTS or c.managed):
                    b.finding(
                        FindingType.PUBLIC_PORT,
                        spec.Kind.CONTAINER,
                        c.name,
                        f"{engine} port {p.container_port}/{p.proto} is published on every interface "
                        f"(host port {p.host_port}); bind it to 127.0.0.1",
                    )
        if c.name in desired.held_back_containers:
            continue
        if c.managed and opaque:
            continue
        if c.managed:
            owner = c.owner
            if owner in declared_keys or owner in desired.held_back:
                continue
            if owner is not None and (spec.Kind.DATABASE_INSTANCE, owner[1]) in desired.held_back:
                continue  # its exporter: the instance's declaration has errors, so it is left as it is
            kind, name = owner or ("", "")
            protected = c.labels.get(labels.PROTECTED) == "true"
            if not prune:
                b.finding(
                    FindingType.ORPHAN,
                    kind or spec.Kind.CONTAINER,
                    name or c.name,
                    f"container {c.name} carries dbstate's labels but is no longer declared "
                    "(run with --prune to remove it"
                    + (", after lifting its deletion protection)" if protected else ")"),
                )
            elif not desired.complete:
                b.finding(
                    FindingType.ORPHAN,
                    kind or spec.Kind.CONTAINER,
                    name or c.name,
                    f"container {c.name} is no longer declared; not pruned while the desired state has errors",
                )
            elif protected:
                b.finding(
                    FindingType.ORPHAN,
                    kind or spec.Kind.CONTAINER,
                    name or c.name,
                    f"container {c.name} is no longer declared; deletion protection keeps it: remove it by hand",
                )
            else:
                b.changes.append(
                    Change(
                        Action.REMOVE,
                        spec.Kind.of(kind) or spec.Kind.CONTAINER,
                        name or c.name,
                        c.name,
                        "no longer declared (--prune); its volumes are kept",
                    )
                )
            continue
        if c.name in declared_names:
            continue
        if engine is not None:
            b.finding(
                FindingType.UNMANAGED_DATABASE,
                spec.Kind.CONTAINER,
                c.name,
                f"{engine} container ({c.image}) that no declaration names: declare it, or retire it",
            )
    declared_vols = {(spec.Kind.VOLUME, v.metadata.name) for v in desired.volumes}
    for vol in observed.volumes:
        key = (vol.labels.get(labels.KIND, ""), vol.labels.get(labels.NAME, ""))
        if vol.managed and not opaque and key not in declared_vols and key not in desired.held_back:
            b.finding(
                FindingType.ORPHAN,
                spec.Kind.VOLUME,
                vol.name,
                "volume carries dbstate's labels but is no longer declared; dbstate never removes a volume",
            )
    declared_nets = {(spec.Kind.NETWORK, n.metadata.name) for n in desired.networks}
    for net in observed.networks:
        key = (net.labels.get(labels.KIND, ""), net.labels.get(labels.NAME, ""))
        if net.managed and not opaque and key not in declared_nets and key not in desired.held_back:
            b.finding(
                FindingType.ORPHAN,
                spec.Kind.NETWORK,
                net.name,
                "network carries dbstate's labels but is no longer declared",
            )
