"""One reconcile pass, wired: load the desired state, observe the engine, diff with the store's history, record it;
and apply a plan with every outcome recorded as it happens. The CLI (and later the loop) call this; it holds no
policy of its own."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.adapters import desired, git, probes, store
from controller.adapters.docker import DockerRuntime
from controller.core import audit, diff, errors, health, live, secrets, spec
from controller.core.plan import Change, Finding, FindingType, Plan
from controller.engine import apply as applying
from controller.engine.ports import PassReport


@dataclass(frozen=True)
class ProbeOptions:
    """Probing the servers in a pass (`plan --probe`, `run`): how long each may take, and after how many consecutive
    failures an instance is `unhealthy`."""

    timeout: float = 2.0
    unhealthy_after: int = 1
    interval: float = 0.0  # run: probe when this long has passed since the last probe (0: every pass)


@dataclass(frozen=True)
class PassResult:
    loaded: spec.Loaded
    observed: live.LiveState
    revision: git.Revision
    plan: Plan
    secrets: frozenset[str]
    pass_id: int | None
    probes: Mapping[str, health.ProbeResult] = field(default_factory=dict)  # the last probe of each instance
    failures: Mapping[str, int] = field(default_factory=dict)  # consecutive failed probes


@dataclass(frozen=True)
class AuditResult:
    loaded: spec.Loaded
    observed: live.LiveState
    revision: git.Revision
    report: audit.Report
    secrets: frozenset[str]  # the desired state's, and the credentials read from undeclared containers


class Session:
    """An engine connection and the state store, for one command."""

    def __init__(
        self,
        docker_host: str | None,
        state_path: Path | None,
        *,
        require_store: bool = False,
        retry_budget: float = 30.0,
        progress: Callable[[str], None] | None = None,
        source: str = "worktree",
    ) -> None:
        self.source = source
        path = state_path or store.default_path()
        if require_store:
            try:
                self.store: store.Store | None = store.Store(path)
            except Exception as e:
                raise errors.DbstateError(f"cannot open the state database {path}: {type(e).__name__}: {e}") from e
        else:
            self.store = store.open_optional(path)
        # the last probes, for passes that do not probe (run probes on its interval, not on every event)
        self.probes: dict[str, health.ProbeResult] = {}
        self.failures: dict[str, int] = {}
        known = self.store.endpoint_aliases() if self.store else None
        self.runtime = DockerRuntime(docker_host, known_aliases=known, retry_budget=retry_budget, progress=progress)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.runtime.close()
        if self.store is not None:
            self.store.close()

    def plan(
        self,
        directory: Path,
        env_file: Path | None,
        *,
        prune: bool,
        command: str,
        probe: ProbeOptions | None = None,
        probe_now: bool = True,
    ) -> PassResult:
        """`probe`: add what the servers say (findings, restarts); `probe_now`: probe in this pass, or reuse the
        session's last probes."""
        rev, loaded = self._load(directory, env_file)
        state = loaded.state
        names = [i.container_name for i in state.instances] + [c.container_name for c in state.consumers]
        observed = self.runtime.observe(inspect=names)
        seen = self.store.seen_volumes() if self.store else frozenset()
        acked = self.store.acknowledged("volume-lost") if self.store else frozenset()
        the_plan = diff.diff(
            state, observed, prune=prune, revision=rev.commit, seen_volumes=seen, acknowledged_lost=acked
        )
        if probe is not None:
            the_plan = self._probe(state, observed, the_plan, probe, probe_now)
        else:  # what the desired state itself declares about shared versions
            the_plan = Plan(
                the_plan.changes, _sorted(the_plan.findings + health.findings(state, {}, {}, 1)), the_plan.notes
            )
        pass_id = None
        if self.store is not None:
            self.store.save_endpoint_aliases(self.runtime.current_aliases)
            self.store.mark_volumes_seen(v.metadata.name for v in state.volumes if observed.volume(v.metadata.name))
            pass_id = self.store.begin_pass(command, rev.commit, rev.dirty)
            self.store.record_findings(pass_id, the_plan.findings)
        return PassResult(
            loaded,
            observed,
            rev,
            the_plan,
            frozenset(secrets.collect(state)),
            pass_id,
            dict(self.probes) if probe is not None else {},
            dict(self.failures) if probe is not None else {},
        )

    def _load(self, directory: Path, env_file: Path | None) -> tuple[git.Revision, spec.Loaded]:
        rev = git.revision(directory)
        if self.source == "commit":
            if rev.commit is None:
                raise git.GitError(f"--source commit: {directory} is not a git checkout with a commit")
            with tempfile.TemporaryDirectory(prefix="dbstate-commit-") as tmp:
                exported = git.export(directory, rev.commit, Path(tmp) / "desired")
                return rev, desired.load(exported, env_file, display=directory)
        return rev, desired.load(directory, env_file)

    def audit(self, directory: Path, env_file: Path | None, *, timeout: float) -> AuditResult:
        """Read-only: every container inspected, every database probed (declared ones with their declared auth, the
        others with the credentials they were started with), each declared connection probed on its network."""
        rev, loaded = self._load(directory, env_file)
        state = loaded.state
        observed = self.runtime.observe(inspect_all=True)
        seen = self.store.seen_volumes() if self.store else frozenset()
        acked = self.store.acknowledged("volume-lost") if self.store else frozenset()
        the_plan = diff.diff(state, observed, revision=rev.commit, seen_volumes=seen, acknowledged_lost=acked)
        internal = frozenset(n.name for n in observed.networks if n.internal)
        declared = {i.container_name: i for i in state.instances}
        jobs: list[tuple[str, spec.DatabaseInstance | health.ProbeTarget, str]] = []
        extra_secrets: set[str] = set()
        for c in observed.containers:
            inst = declared.get(c.name)
            if inst is not None and c.owner not in (None, (inst.kind, inst.metadata.name)):
                inst = None
            engine = audit.engine_of(c, inst)
            address = health.probe_address(c, internal) if c.state == "running" else None
            if engine is None or address is None:
                continue
            if inst is not None:
                jobs.append((c.name, inst, address))
            else:
                target = audit.own_credentials(c, engine)
                if target.password is not None:
                    extra_secrets.add(target.password.reveal())
                jobs.append((c.name, target, address))
        # each declared `uses`: the instance probed at its address on every network it shares with the consumer
        by_name = {i.metadata.name: i for i in state.instances}
        # (an address already probed above is not probed again: its result serves the connection too)
        main_address = {(c, a) for c, _, a in jobs}
        reused: dict[tuple[str, str], str] = {}
        conn_jobs: list[tuple[tuple[str, str], spec.DatabaseInstance | health.ProbeTarget, str]] = []
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
                    if (ic.name, att.ip) in main_address:
                        reused[key] = ic.name
                    elif key not in {k for k, _, _ in conn_jobs}:
                        conn_jobs.append((key, inst, att.ip))
        results = probes.probe_many(jobs + [(f"{k[0]}@{k[1]}", t, a) for k, t, a in conn_jobs], timeout)
        conn_results = {k: results.pop(f"{k[0]}@{k[1]}") for k, _, _ in conn_jobs}
        conn_results.update({k: results[name] for k, name in reused.items() if name in results})
        fallback: dict[str, tuple[str, str]] = {}
        for c in observed.containers:
            r = results.get(c.name)
            if r is None or r.version:
                continue
            engine = audit.engine_of(c, declared.get(c.name))
            announced = None
            if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL) and r.address:
                announced = probes.mariadb_handshake(r.address, timeout)
            if announced:
                fallback[c.name] = (announced, "handshake")
            elif (from_image := audit.image_version(c)) is not None:
                fallback[c.name] = (from_image, "image")
        by_instance = {
            i.metadata.name: results[i.container_name] for i in state.instances if i.container_name in results
        }
        failures = {n: 0 if r.reachable else 1 for n, r in by_instance.items()}
        findings = _sorted(the_plan.findings + health.findings(state, by_instance, failures, 1))
        report = audit.build(state, observed, findings, results, fallback, conn_results)
        return AuditResult(loaded, observed, rev, report, frozenset(secrets.collect(state)) | extra_secrets)

    def _probe(
        self, state: spec.DesiredState, observed: live.LiveState, the_plan: Plan, options: ProbeOptions, now: bool
    ) -> Plan:
        # an instance whose container is not its own (name conflict) or whose volume is lost is not probed: the
        # diff's finding says what is wrong, and a probe would only talk to the wrong server or to nothing
        skip = {
            f.name
            for f in the_plan.findings
            if f.kind == "DatabaseInstance" and f.type in (FindingType.NAME_CONFLICT, FindingType.VOLUME_LOST)
        }
        instances = [i for i in state.instances if i.metadata.name not in skip]
        probed: frozenset[str] = frozenset()
        if now:
            internal = frozenset(n.name for n in observed.networks if n.internal)
            results = probes.probe_all(instances, observed, timeout=options.timeout, internal=internal)
            if self.store is not None:
                failures = self.store.record_probes(results.values(), keep=[i.metadata.name for i in state.instances])
            else:
                failures = {n: 0 if r.reachable else self.failures.get(n, 0) + 1 for n, r in results.items()}
            self.probes, self.failures, probed = results, failures, frozenset(results)
        names = {i.metadata.name for i in instances}
        results = {n: r for n, r in self.probes.items() if n in names}
        found = health.findings(state, results, self.failures, options.unhealthy_after)
        restarts = health.restarts(state, observed, self.failures, probed)
        return Plan(the_plan.changes + restarts, _sorted(the_plan.findings + found), the_plan.notes)

    def recorder(self, result: PassResult) -> Callable[[applying.Outcome], None]:
        """Writes each outcome to the store as soon as it is known (a crash loses nothing already done)."""

        def record(outcome: applying.Outcome) -> None:
            if self.store is not None and result.pass_id is not None:
                self.store.record_outcome(result.pass_id, outcome)
                if outcome.status == "ok" and outcome.change.kind == "Volume":
                    self.store.mark_volumes_seen([outcome.change.target])  # lost from now on if it vanishes

        return record

    def apply(
        self,
        result: PassResult,
        *,
        parallel: int,
        on_outcome: Callable[[applying.Outcome], None] | None = None,
        on_start: Callable[[Change], None] | None = None,
    ) -> tuple[applying.Outcome, ...]:
        record = self.recorder(result)

        def recorded(outcome: applying.Outcome) -> None:
            record(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        return applying.apply(result.plan, self.runtime, parallel=parallel, on_outcome=recorded, on_start=on_start)

    def finish(
        self,
        result: PassResult,
        outcomes: tuple[applying.Outcome, ...] = (),
        backoffs: Mapping[str, Any] | None = None,
    ) -> None:
        if self.store is not None and result.pass_id is not None:
            failed = sum(1 for o in outcomes if o.status != "ok")
            self.store.finish_pass(
                result.pass_id, len(result.plan.changes), failed, len(result.plan.findings), len(result.loaded.errors)
            )
            self.store.set_resources(status_rows(result, outcomes, backoffs or {}))


def _sorted(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (f.type.value, f.kind, f.name, f.message)))


def declared_keys(state: spec.DesiredState) -> list[str]:
    return (
        [f"Network/{n.metadata.name}" for n in state.networks]
        + [f"Volume/{v.metadata.name}" for v in state.volumes]
        + [f"DatabaseInstance/{i.metadata.name}" for i in state.instances]
        + [f"Consumer/{c.metadata.name}" for c in state.consumers]
    )


def status_rows(
    result: PassResult, outcomes: tuple[applying.Outcome, ...], backoffs: Mapping[str, Any]
) -> list[tuple[str, str, str, int, float | None, str | None]]:
    """Per resource: failing (last error, attempts, next retry), drifted, findings, invalid, or in-sync."""
    rev = result.revision.commit
    failed = {o.change.key: o.message for o in outcomes if o.status == "failed"}
    done = {o.change.key for o in outcomes if o.status == "ok"}
    drifted = {c.key for c in result.plan.changes} - done
    findings: dict[str, str] = {}
    for f in result.plan.findings:
        findings.setdefault(f"{f.kind}/{f.name}", f"{f.type.value}: {f.message}")
    rows: list[tuple[str, str, str, int, float | None, str | None]] = []
    now_wall, now_mono = time.time(), time.monotonic()
    for key in sorted(set(declared_keys(result.loaded.state)) | set(findings) | set(failed)):
        b = backoffs.get(key)
        if key in failed or b is not None:
            message = failed.get(key) or (b.last_error if b else "")
            next_retry = now_wall + (b.due - now_mono) if b is not None else None
            rows.append((key, "failing", message, b.attempts if b else 1, next_retry, rev))
        elif key in drifted:
            rows.append((key, "drifted", "changes pending", 0, None, rev))
        elif key in findings:
            rows.append((key, "findings", findings[key], 0, None, rev))
        else:
            rows.append((key, "in-sync", "", 0, None, rev))
    for kind, name in sorted(result.loaded.state.held_back):
        rows.append((f"{kind}/{name}", "invalid", "its declaration has errors: left alone", 0, None, rev))
    return rows


class Reconciler:
    """The `engine.ports.Reconciler` of `dbstate run`: one session, one configuration, one pass at a time."""

    def __init__(
        self,
        session: Session,
        directory: Path,
        env_file: Path | None,
        *,
        prune: bool,
        parallel: int,
        probe: ProbeOptions | None = None,
    ) -> None:
        self.session = session
        self.probe = probe
        self.directory = directory
        self.env_file = env_file
        self.prune = prune
        self.parallel = parallel
        self.last: PassResult | None = None
        self.last_probe: float | None = None
        self.last_outcomes: tuple[applying.Outcome, ...] = ()

    def run_pass(self, trigger: str, deferred: Callable[[str], bool], should_stop: Callable[[], bool]) -> PassReport:
        t0 = time.monotonic()
        # probes run on their own interval (a timer triggers a pass) and on the first pass, not on every event
        now_mono = time.monotonic()
        probe_now = self.probe is not None and (
            self.last_probe is None or now_mono - self.last_probe >= self.probe.interval - 0.5
        )
        if probe_now:
            self.last_probe = now_mono
        result = self.session.plan(
            self.directory, self.env_file, prune=self.prune, command="run", probe=self.probe, probe_now=probe_now
        )
        now = tuple(c for c in result.plan.changes if not deferred(c.key))
        pending = tuple(sorted({c.key for c in result.plan.changes if deferred(c.key)}))
        outcomes: tuple[applying.Outcome, ...] = ()
        if now:
            todo = Plan(now, result.plan.findings, result.plan.notes)
            outcomes = applying.apply(
                todo,
                self.session.runtime,
                parallel=self.parallel,
                should_stop=should_stop,
                on_outcome=self.session.recorder(result),
            )
        self.last, self.last_outcomes = result, outcomes
        state = result.loaded.state
        # a probe taken before a change to its instance (created, started, restarted) says nothing about it now: it
        # is dropped until the next probe (the count of failures stays, so restarts keep backing off)
        touched = {o.change.name for o in outcomes if o.status == "ok" and o.change.kind == "DatabaseInstance"}
        for name in touched:
            self.session.probes.pop(name, None)
        probes_now = {n: r for n, r in result.probes.items() if n not in touched}
        counts: dict[str, int] = {}
        for f in result.plan.findings:
            counts[f.type.value] = counts.get(f.type.value, 0) + 1
        health = {}
        for inst in state.instances:
            c = result.observed.container(inst.container_name)
            up = c is not None and c.state == "running" and c.health in (None, "healthy")
            probed = probes_now.get(inst.metadata.name)
            health[inst.metadata.name] = int(up and (probed is None or probed.reachable))
        drifted = frozenset(c.key for c in result.plan.changes)
        finding_keys = frozenset(f"{f.kind}/{f.name}" for f in result.plan.findings)
        return PassReport(
            reconcile_id=uuid.uuid4().hex[:12],
            trigger=trigger,
            revision=result.revision.commit,
            dirty=result.revision.dirty,
            duration=time.monotonic() - t0,
            outcomes=outcomes,
            pending=pending,
            drifted=drifted,
            findings=counts,
            finding_keys=finding_keys,
            errors=len(result.loaded.errors),
            health=health,
            in_sync_keys=frozenset(declared_keys(state)) - drifted - finding_keys,
            problems=result.loaded.errors,
            probes=probes_now,
        )

    def record_status(self, report: PassReport, backoffs: Mapping[str, Any]) -> None:
        if self.last is not None:
            self.session.finish(self.last, self.last_outcomes, backoffs)
