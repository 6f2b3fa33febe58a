"""What the database servers themselves say, turned into findings: pure, like the diff.

A probe (adapters/probes) logs in to each instance and reports a `ProbeResult`. From the results of this pass and
the count of consecutive failures kept in the state store, `findings()` derives:

- `unhealthy`: the last N probes of an instance failed (N is `unhealthy_after`);
- `version-mismatch`: the server reports a major version other than `spec.version`;
- `auth-weak`: one finding per weakness the probe saw (a trust rule, an account without a password, ...);
- `version-inconsistent`: shared instances (`metadata.labels.tier: shared`) of one engine on different majors, as the
  seed asks ("use same PostgreSQL version across shared instances"). Live versions count when the server answered,
  the declared ones otherwise, so a plan without probes still reports what the desired state itself declares.

`restarts()` turns an instance's `policy.restartAfterFailedProbes: K` into a restart after K, 2K, 4K, ... consecutive
failures (off by default; a restart that does not help is not repeated at every probe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.core import databases, live, spec, versions
from controller.core.plan import Action, Change, Finding, FindingType
from controller.core.secrets import Secret

SHARED_LABEL = ("tier", "shared")


@dataclass(frozen=True)
class ProbeResult:
    instance: str
    address: str  # where the probe connected ("" when there was nowhere to connect)
    reachable: bool  # connected and logged in with the declared auth
    version: str | None = None  # as the server reports it, e.g. "15.20", "10.11.19", "7.0.15"
    rtt_ms: float | None = None
    error: str | None = None  # why it is not reachable or not authenticated, without secrets
    auth_weak: tuple[str, ...] = ()  # one message per weakness found
    facts: dict[str, str] = field(default_factory=dict)

    def version_mismatch(self, declared: str, two_part: bool = False) -> bool:
        return self.version is not None and major_differs(declared, self.version, two_part)

    def to_json(self) -> dict[str, object]:
        return {
            "instance": self.instance,
            "address": self.address,
            "reachable": self.reachable,
            "version": self.version,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
            "error": self.error,
            "auth_weak": list(self.auth_weak),
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class ProbeTarget:
    """Who a probe logs in as: a declared instance's auth, or (for `audit` of a container nobody declared) the
    credentials that container was started with. The password stays a Secret until the client library needs it."""

    name: str
    engine: spec.Engine
    method: str
    user: str | None = None
    password: Secret | None = None
    database: str | None = None

    @classmethod
    def of(cls, inst: spec.DatabaseInstance) -> ProbeTarget:
        a = inst.spec.auth
        return cls(inst.metadata.name, inst.spec.engine, a.method, a.user, a.password, a.database)


def major(engine: spec.Engine, version: str) -> str:
    """The part of a version that makes a major release: `16` of 16.2, `10.11` of MariaDB 10.11.9, `7` of 7.0.15."""
    return databases.of(engine).major(version)


def probe_address(c: live.Container, internal: frozenset[str] = frozenset()) -> str | None:
    """The address to probe a container on: its IP on a network, preferring networks that are not internal (an
    internal network may not be routed to where dbstate runs). None when it has no address."""
    ips = [a for a in c.networks if a.ip]
    ips.sort(key=lambda a: (a.network in internal, a.network))
    return ips[0].ip if ips else None


def major_differs(declared: str, reported: str, two_part: bool) -> bool:
    """Whether a server's version is another major than the declared one: the first number (PostgreSQL, Redis), the
    first two (MariaDB, MySQL); 7.2 declared and 7.0.15 reported are one major."""
    return not versions.agree(versions.major(two_part, declared), versions.major(two_part, reported))


def findings(
    state: spec.DesiredState,
    results: Mapping[str, ProbeResult],
    failures: Mapping[str, int],
    unhealthy_after: int,
    known_versions: Mapping[str, str] | None = None,
) -> tuple[Finding, ...]:
    """`results`: this pass's probe per instance name (absent: not probed); `failures`: consecutive failed probes,
    this one included; `known_versions`: what the same container's server last said, for a probe that failed this
    time (a timeout does not change a server's version: the same servers give the same findings)."""
    out: list[Finding] = []
    kind = spec.Kind.DATABASE_INSTANCE
    for inst in state.instances:
        name = inst.metadata.name
        r = results.get(name)
        n = failures.get(name, 0)
        if r is not None and not r.reachable and n >= unhealthy_after:
            times = "the last probe" if n == 1 else f"the last {n} probes"
            out.append(Finding(FindingType.UNHEALTHY, kind, name, f"{times} failed: {r.error or 'no answer'}"))
        reported = r.version if r is not None and r.reachable else (known_versions or {}).get(name)
        two_part = databases.of(inst.spec.engine).two_part_versions
        if reported is not None and major_differs(inst.spec.version, reported, two_part):
            out.append(
                Finding(
                    FindingType.VERSION_MISMATCH,
                    kind,
                    name,
                    f"the server reports {inst.spec.engine.value} {reported}, declared {inst.spec.version}: "
                    "fix the image or the declaration (an upgrade is never done on its own)",
                )
            )
        if r is None or not r.reachable:
            continue
        for weakness in r.auth_weak:
            out.append(Finding(FindingType.AUTH_WEAK, kind, name, weakness))
    out.extend(_inconsistent(state, results))
    return tuple(out)


def _inconsistent(state: spec.DesiredState, results: Mapping[str, ProbeResult]) -> list[Finding]:
    by_engine: dict[spec.Engine, list[tuple[str, str, str]]] = {}
    for inst in state.instances:
        if inst.metadata.labels.get(SHARED_LABEL[0]) != SHARED_LABEL[1]:
            continue
        r = results.get(inst.metadata.name)
        live_version = r.version if r is not None and r.reachable and r.version else None
        source = "server" if live_version else "declared"
        version = major(inst.spec.engine, live_version or inst.spec.version)
        by_engine.setdefault(inst.spec.engine, []).append((inst.metadata.name, version, source))
    out: list[Finding] = []
    for engine, members in sorted(by_engine.items()):
        if len({v for _, v, _ in members}) < 2:
            continue
        listing = ", ".join(f"{n} {v} ({src})" for n, v, src in members)
        for name, _, _ in members:
            out.append(
                Finding(
                    FindingType.VERSION_INCONSISTENT,
                    spec.Kind.DATABASE_INSTANCE,
                    name,
                    f"shared {engine.value} instances are on different major versions: {listing}; "
                    "keep shared instances of one engine on one version",
                )
            )
    return out


def restart_due(failures: int, after: int | None) -> bool:
    """After K, 2K, 4K, 8K, ... consecutive failures: a restart that did not help waits twice as long."""
    if after is None or failures < after or failures % after:
        return False
    q = failures // after
    return q & (q - 1) == 0


def restarts(
    state: spec.DesiredState, observed: live.LiveState, failures: Mapping[str, int], probed: frozenset[str]
) -> tuple[Change, ...]:
    """Restarts asked for by `policy.restartAfterFailedProbes`, for instances probed just now whose running
    container dbstate manages. A stopped container is the diff's business (start), not a restart."""
    out: list[Change] = []
    for inst in state.instances:
        name = inst.metadata.name
        after = inst.spec.policy.restart_after_failed_probes
        if name not in probed or not restart_due(failures.get(name, 0), after):
            continue
        c = observed.container(inst.container_name)
        if c is None or c.owner != (inst.kind, name) or c.state != "running":
            continue
        reason = f"{failures[name]} consecutive probes failed (policy.restartAfterFailedProbes: {after})"
        out.append(Change(Action.RESTART, inst.kind, name, c.name, reason))
    return tuple(out)
