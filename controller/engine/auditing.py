"""`dbstate audit` as one read-only pass: every container inspected, every database probed (declared ones with their
declared auth, the others with the credentials they were started with), each declared connection probed on its
network; `core.audit` decides what it all means."""

from __future__ import annotations

from dataclasses import dataclass

from controller.core import adoption, audit, composeref, databases, diff, health, live, recognise, secrets, spec
from controller.core.revision import Revision
from controller.engine.ports import DesiredSource, History, Observer, ProbeJob, Prober
from controller.engine.reconciler import sort_findings


@dataclass(frozen=True)
class AuditResult:
    loaded: spec.Loaded
    observed: live.LiveState
    revision: Revision
    report: audit.Report
    secrets: frozenset[str]  # the desired state's, and the credentials read from undeclared containers


def run(source: DesiredSource, observer: Observer, prober: Prober, history: History, timeout: float) -> AuditResult:
    desired = source.load()
    observed = observer.observe(inspect_all=True)
    state = composeref.resolve(desired.loaded.state, observed)
    declared = {f"{i.kind}/{i.metadata.name}" for i in state.instances}
    observed = adoption.relabel(observed, dict(history.adoptions()), declared)
    the_plan = diff.diff(
        state,
        observed,
        revision=desired.revision.commit,
        seen_volumes=history.seen_volumes(),
        acknowledged_lost=history.acknowledged("volume-lost"),
    )
    jobs, extra_secrets = _server_jobs(state, observed)
    conn_jobs, reused = _connection_jobs(state, observed, {(key, address) for key, _, address in jobs})
    results = prober.probe_many([*jobs, *((f"{k[0]}@{k[1]}", t, a) for k, t, a in conn_jobs)], timeout)
    conn_results = {k: results.pop(f"{k[0]}@{k[1]}") for k, _, _ in conn_jobs}
    conn_results.update({k: results[name] for k, name in reused.items() if name in results})
    fallback = _fallback_versions(state, observed, results, prober, timeout)
    by_instance = {i.metadata.name: results[i.container_name] for i in state.instances if i.container_name in results}
    failures = {n: 0 if r.reachable else 1 for n, r in by_instance.items()}
    findings = sort_findings(the_plan.findings + health.findings(state, by_instance, failures, 1))
    report = audit.build(state, observed, findings, results, fallback, conn_results)
    return AuditResult(
        desired.loaded,
        observed,
        desired.revision,
        report,
        frozenset(secrets.collect(state)) | desired.loaded.secret_values | extra_secrets,
    )


def _server_jobs(state: spec.DesiredState, observed: live.LiveState) -> tuple[list[ProbeJob], frozenset[str]]:
    """One probe per running database container, keyed by container name; and the secrets read from the env of
    undeclared ones."""
    internal = frozenset(n.name for n in observed.networks if n.internal)
    declared = {i.container_name: i for i in state.instances}
    jobs: list[ProbeJob] = []
    extra: set[str] = set()
    for c in observed.containers:
        inst = declared.get(c.name)
        if inst is not None and c.owner not in (None, (inst.kind, inst.metadata.name)):
            inst = None
        engine = recognise.engine_of(c, inst)
        address = health.probe_address(c, internal) if c.state == "running" else None
        if engine is None or address is None:
            continue
        if inst is not None:
            jobs.append((c.name, inst, address))
        else:
            target = audit.own_credentials(c, engine)
            if target.password is not None:
                extra.add(target.password.reveal())
            jobs.append((c.name, target, address))
    return jobs, frozenset(extra)


def _connection_jobs(
    state: spec.DesiredState, observed: live.LiveState, probed: set[tuple[str, str]]
) -> tuple[list[tuple[tuple[str, str], spec.DatabaseInstance, str]], dict[tuple[str, str], str]]:
    """Each declared `uses`: the instance probed at its address on every network it shares with the consumer. An
    address already probed (`probed`: container name, address) is not probed again: its result serves the
    connection too (returned as (instance, network) -> container name)."""
    by_name = {i.metadata.name: i for i in state.instances}
    reused: dict[tuple[str, str], str] = {}
    jobs: list[tuple[tuple[str, str], spec.DatabaseInstance, str]] = []
    for con in state.consumers:
        cc = observed.container(con.container_name)
        for use in con.spec.uses:
            inst = by_name.get(use.instance)
            ic = observed.container(inst.container_name) if inst is not None else None
            if inst is None or cc is None or ic is None or ic.state != "running":
                continue
            for att in ic.networks:
                key = (inst.metadata.name, att.network)
                if not att.ip or cc.attachment(att.network) is None or key in reused:
                    continue
                if (ic.name, att.ip) in probed:
                    reused[key] = ic.name
                elif key not in {k for k, _, _ in jobs}:
                    jobs.append((key, inst, att.ip))
    return jobs, reused


def _fallback_versions(
    state: spec.DesiredState,
    observed: live.LiveState,
    results: dict[str, health.ProbeResult],
    prober: Prober,
    timeout: float,
) -> dict[str, tuple[str, str]]:
    """Where a login failed: the version a MariaDB/MySQL greeting announces, else the one the image says it ships."""
    declared = {i.container_name: i for i in state.instances}
    fallback: dict[str, tuple[str, str]] = {}
    for c in observed.containers:
        r = results.get(c.name)
        if r is None or r.version:
            continue
        engine = recognise.engine_of(c, declared.get(c.name))
        announced = None
        if engine is not None and databases.of(engine).greets_with_version and r.address:
            announced = prober.handshake(r.address, timeout)
        if announced:
            fallback[c.name] = (announced, "handshake")
        elif (from_image := audit.image_version(c)) is not None:
            fallback[c.name] = (from_image, "image")
    return fallback
