"""One reconcile pass, owned in one place: read both sides, diff with the history, add what the servers say, defer
what waits for a retry, apply, record every outcome, and report a result. `plan`, `apply` and the loop of `run` all
go through it; it talks only to the ports (`engine.ports`), so that a test can hand it fakes.

The contract is controller-runtime's: a pass takes a request (what triggered it, which keys are backing off), re-reads
everything (level-triggered), and returns a `PassReport`, or raises; `core.errors` says by type whether to back off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from controller.core import (
    adoption,
    composeref,
    diff,
    errors,
    health,
    live,
    overview,
    secrets,
    spec,
    suspension,
    windows,
)
from controller.core.adoption import Adoption
from controller.core.diagnostics import Diagnostic
from controller.core.dumps import Manifest
from controller.core.health import ProbeResult
from controller.core.labels import SPEC_HASH
from controller.core.options import PassOptions, ProbeOptions
from controller.core.plan import Action, Adopt, Change, Finding, FindingType, NoteType, Outcome, Plan, ResourceStatus
from controller.core.revision import Revision
from controller.engine import apply as applying
from controller.engine import backing
from controller.engine.backing import Server
from controller.engine.guard import Guard
from controller.engine.ports import (
    Clock,
    DesiredSource,
    Facts,
    History,
    Observer,
    Prober,
    Runtime,
    SystemClock,
)
from controller.engine.queue import Backoff

NOT_RECORDED = 0  # the pass id of a plan that is no pass (Reconciler.plan(record=False))


@dataclass(frozen=True)
class PassResult:
    """Both sides as read, and the plan between them."""

    loaded: spec.Loaded
    observed: live.LiveState
    revision: Revision
    plan: Plan
    secrets: frozenset[str]  # every secret value of the desired state, for the output scrubbers
    pass_id: int
    probes: Mapping[str, ProbeResult] = field(default_factory=dict)  # the last probe of each instance
    failures: Mapping[str, int] = field(default_factory=dict)  # consecutive failed probes
    durations: Mapping[tuple[str, str], Sequence[float]] = field(default_factory=dict)  # measured (core/disruption)


@dataclass(frozen=True)
class Request:
    """What the loop asks of a pass: why it runs, and which keys wait for their retry."""

    trigger: str
    deferred: Callable[[str], bool] = lambda _key: False
    should_stop: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class PassReport:
    """What a pass did, for the loop's queue, metrics, logs and the status table."""

    reconcile_id: str
    trigger: str
    revision: str | None
    dirty: bool | None
    duration: float
    outcomes: tuple[Outcome, ...]
    pending: tuple[str, ...]  # keys with changes that were deferred (waiting for a retry)
    drifted: frozenset[str]  # keys the plan had changes for
    findings: Mapping[str, int]  # type -> count
    finding_keys: frozenset[str]
    errors: int
    health: Mapping[str, int]  # instance name -> 1 up / 0 not
    in_sync_keys: frozenset[str] = frozenset()
    problems: tuple[Diagnostic, ...] = ()  # the desired state's errors, with file and line
    probes: Mapping[str, ProbeResult] = field(default_factory=dict)
    found: tuple[Finding, ...] = ()  # the findings themselves (notifications say what each is)


def sort_findings(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (f.type.value, f.kind, f.name, f.message)))


def declared_keys(state: spec.DesiredState) -> list[str]:
    return (
        [f"Network/{n.metadata.name}" for n in state.networks]
        + [f"Volume/{v.metadata.name}" for v in state.volumes]
        + [f"DatabaseInstance/{i.metadata.name}" for i in state.instances]
        + [f"Consumer/{c.metadata.name}" for c in state.consumers]
        + [f"Exporter/{e.metadata.name}" for e in state.exporters]
    )


def _volumes_to_remember(state: spec.DesiredState, observed: live.LiveState, p: Plan) -> dict[str, str | None]:
    """The declared volumes on the engine now, with their identity, except those the plan calls lost (a replaced
    volume must never become the one remembered, or the next pass would start on it)."""
    lost = {f.name for f in p.findings if f.type is FindingType.VOLUME_LOST and f.kind == spec.Kind.VOLUME}
    out: dict[str, str | None] = {}
    for v in state.volumes:
        found = observed.volume(v.metadata.name)
        if found is not None and v.metadata.name not in lost:
            out[v.metadata.name] = found.identity  # "" for an unlabelled volume: remembered as such
    return out


PRUNE_EVERY = 3600.0  # seconds between two prunes of the history (options.keep_history)


MARKER_COLLECTION = 600.0  # seconds between collections of adoption markers whose container is gone


class Reconciler:
    def __init__(
        self,
        source: DesiredSource,
        observer: Observer,
        runtime: Runtime,
        history: History,
        options: PassOptions,
        *,
        prober: Prober | None = None,
        clock: Clock | None = None,
        facts: Facts | None = None,
        guard: Guard | None = None,
    ) -> None:
        """`facts`: where the volume facts are kept besides the history (the engine), so that a lost history never
        makes a lost volume look new."""
        self.source = source
        self.facts = facts
        self.guard = guard  # backups before destructive changes, dump-restore upgrades (engine/backing.py)
        self.observer = observer
        self.runtime = runtime
        self.history = history
        self.options = options
        self.prober = prober
        self.clock: Clock = clock or SystemClock()
        # the last probes, for passes that do not probe (run probes on its interval, not on every event)
        self.probes: dict[str, ProbeResult] = {}
        self.versions: dict[str, tuple[str, str]] = {}  # instance -> (container id, version) of its last good probe
        self.failures: dict[str, int] = {}
        self.last_probe: float | None = None  # monotonic time of the last probe
        self.last: PassResult | None = None
        self.last_outcomes: tuple[Outcome, ...] = ()
        self._pruned = float("-inf")  # when the history was last pruned (options.keep_history)
        self.failed_upgrades: dict[str, tuple[str, str]] = {}  # key -> (spec hash, why), for run (not retried)
        self._collected = float("-inf")  # when the adoption markers of gone containers were last collected
        self.held_out: dict[str, str] = {}  # key -> which job: instances a one-off job of the controller works on
        self._passing = threading.Lock()  # held by `reconcile` for its whole pass

    @contextlib.contextmanager
    def holding_out(self, key: str, job: str) -> Iterator[None]:
        """While a one-off job of the controller (a restore handed to `dbstate run`) works on `key`: no pass changes
        it and no scheduled backup takes it; a pass already under way (which may have planned a change of it) ends
        first. The other instances are reconciled as usual meanwhile."""
        self.held_out[key] = job
        try:
            with self._passing:
                pass
            yield
        finally:
            self.held_out.pop(key, None)

    def _hold_failed_upgrades(self, result: PassResult) -> PassResult:
        """`run` does not retry a dump-restore upgrade that failed for the same declaration: each attempt stops the
        database. It is a finding until the declaration changes or a human runs `dbstate apply`."""
        held, keep = [], []
        for c in result.plan.changes:
            failed = self.failed_upgrades.get(c.key)
            if c.action is Action.UPGRADE and failed is not None and failed[0] == _spec_hash(c):
                held.append(
                    Finding(
                        FindingType.MAJOR_UPGRADE,
                        c.kind,
                        c.name,
                        f"the upgrade failed and is not retried on its own (each attempt stops the database): "
                        f"{failed[1]}. Fix the cause, then `dbstate apply` (or change the declaration)",
                    )
                )
            else:
                keep.append(c)
        if not held:
            return result
        the_plan = Plan(tuple(keep), sort_findings(result.plan.findings + tuple(held)), result.plan.notes)
        return dataclasses.replace(result, plan=the_plan)

    def backups_due(self) -> list[Server]:
        """The instances whose scheduled backup is due, as of the last pass (none before the first)."""
        if self.guard is None or self.last is None:
            return []
        instances = [i for i in self.last.loaded.state.instances if f"{i.kind}/{i.metadata.name}" not in self.held_out]
        return backing.due(instances, self.last.observed, self.guard.store, self.clock.time())

    def verifications_due(self) -> list[tuple[spec.DatabaseInstance, Manifest]]:
        """The backups policy.backup.verify asks to restore-verify now, as of the last pass."""
        if self.guard is None or self.last is None:
            return []
        instances = [i for i in self.last.loaded.state.instances if f"{i.kind}/{i.metadata.name}" not in self.held_out]
        return backing.verifications_due(instances, self.guard.store, self.clock.time())

    def verify_backup(self, inst: spec.DatabaseInstance, manifest: Manifest) -> Manifest:
        if self.guard is None:
            raise errors.BackupError("no backup directory")
        return backing.verify(manifest, inst, self.guard.shell, self.guard.store, self.guard.progress)

    def backup_facts(self) -> dict[str, tuple[Manifest, float | None]]:
        """Each declared instance's newest backup and newest verification, from the backup directory (the metrics
        start from them, not from nothing, when the controller starts)."""
        if self.guard is None or self.last is None:
            return {}
        return backing.newest(self.last.loaded.state.instances, self.guard.store)

    def back_up(self, server: Server) -> Manifest:
        """A scheduled backup, then the instance's retention (policy.backup.keep)."""
        if self.guard is None:
            raise errors.BackupError("no backup directory")
        revision = self.last.revision.commit if self.last is not None else None
        m = backing.take(
            server,
            self.guard.shell,
            self.guard.store,
            revision=revision,
            reason="schedule",
            progress=self.guard.progress,
        )
        self.guard.store.prune(server.name, server.inst.spec.policy.backup.keep)
        return m

    @property
    def secrets(self) -> frozenset[str]:
        """The secret values of the desired state last read (for the log scrubber)."""
        return self.last.secrets if self.last is not None else frozenset()

    # -- one pass, in steps (plan and apply use them one by one) -------------------------------------------------

    def plan(self, *, probe_now: bool = True, trigger: str | None = None, record: bool = True) -> PassResult:
        """Read both sides and diff them. `probe_now`: probe in this pass, or reuse the last probes. `record: False`
        for the one-off data commands (backup, restore, verify-backup, migrate-volume), which read the plan but are
        no pass: nothing is written to the pass history (a pass begun there would never be finished)."""
        started = self.clock.time()  # the pass's duration is the reading, the diff, the probes and the apply
        desired = self.source.load()
        state = desired.loaded.state
        names = [i.container_name for i in state.instances] + [c.container_name for c in state.consumers]
        observed = self.observer.observe(inspect=names)
        resolved = composeref.resolve(state, observed)
        if resolved is not state:  # consumers named by compose service: their containers' env is needed too
            state = resolved
            desired = dataclasses.replace(desired, loaded=dataclasses.replace(desired.loaded, state=state))
            more = [c.container_name for c in state.consumers if c.container_name not in names]
            if more:
                observed = self.observer.observe(inspect=names + more)
        declared = {f"{i.kind}/{i.metadata.name}" for i in state.instances}
        self._collect_markers(observed)
        observed = adoption.relabel(observed, self._adoptions(), declared)
        the_plan = diff.diff(
            state,
            observed,
            prune=self.options.prune,
            revision=desired.revision.commit,
            seen_volumes=self._seen_volumes(),
            acknowledged_lost=self.history.acknowledged("volume-lost"),
            scope=self.options.scope,
        )
        probe = self.options.probe
        if probe is not None:
            the_plan = self._probe(state, observed, the_plan, probe, probe_now)
        else:  # what the desired state itself declares about shared versions
            found = health.findings(state, {}, {}, 1)
            the_plan = Plan(the_plan.changes, sort_findings(the_plan.findings + found), the_plan.notes)
        the_plan = suspension.hold(
            the_plan, suspension.suspended(state, self.history.suspensions()), dict(self.held_out)
        )
        ignore = self.options.ignore_window is not None
        the_plan = windows.hold(the_plan, state, observed, self.clock.time(), ignore=ignore)
        self._mark_volumes_seen(_volumes_to_remember(state, observed, the_plan))
        pass_id = NOT_RECORDED
        if record:
            if self.options.ignore_window is not None:
                trigger = f"--ignore-window {self.options.ignore_window}"
            pass_id = self.history.begin_pass(
                self.options.command, desired.revision.commit, desired.revision.dirty, trigger, started
            )
            self.history.record_findings(pass_id, the_plan.findings)
        return PassResult(
            desired.loaded,
            observed,
            desired.revision,
            the_plan,
            frozenset(secrets.collect(state)) | desired.loaded.secret_values,
            pass_id,
            dict(self.probes) if probe is not None else {},
            dict(self.failures) if probe is not None else {},
            self.history.durations(),
        )

    def _seen_volumes(self) -> dict[str, str | None]:
        seen = dict(self.history.seen_volumes())
        if self.facts is not None:
            for name, identity in self.facts.seen_volumes().items():
                if seen.get(name) is None:
                    seen[name] = identity
        return seen

    def _adoptions(self) -> dict[str, Adoption]:
        adopted = dict(self.facts.adoptions()) if self.facts is not None else {}
        adopted.update(self.history.adoptions())
        return adopted

    def _collect_markers(self, observed: live.LiveState) -> None:
        """Now and then (a writer only): the adoption markers of containers that are gone."""
        if self.facts is None or self.clock.monotonic() - self._collected < MARKER_COLLECTION:
            return
        self._collected = self.clock.monotonic()
        try:
            self.facts.forget_gone({c.id for c in observed.containers})
        except errors.EngineError:  # tried again at the next collection; nothing depends on it
            self._collected = float("-inf")

    def _record_adoption(self, adopted: Adoption) -> None:
        self.history.record_adoption(adopted)
        if self.facts is not None:
            self.facts.record_adoption(adopted)

    def _mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None:
        self.history.mark_volumes_seen(volumes)
        if self.facts is not None:
            self.facts.mark_volumes_seen(volumes)

    def _probe(
        self, state: spec.DesiredState, observed: live.LiveState, the_plan: Plan, options: ProbeOptions, now: bool
    ) -> Plan:
        # an instance whose volume is lost is not probed (there is no server, or the wrong one: the diff says so); one
        # whose container is somebody else's (name-conflict, adoption-blocked) still is, read-only: undeclared is not
        # ignored, and a declared database that stops is reported whoever made it
        skip = {
            f.name
            for f in the_plan.findings
            if f.kind == spec.Kind.DATABASE_INSTANCE and f.type is FindingType.VOLUME_LOST
        }
        instances = [i for i in state.instances if i.metadata.name not in skip]
        probed: frozenset[str] = frozenset()
        if now and self.prober is not None:
            internal = frozenset(n.name for n in observed.networks if n.internal)
            results = self.prober.probe_all(instances, observed, timeout=options.timeout, internal=internal)
            self.failures = self.history.record_probes(
                results.values(), keep=[i.metadata.name for i in state.instances]
            )
            self.probes, probed = results, frozenset(results)
            self.last_probe = self.clock.monotonic()
        names = {i.metadata.name for i in instances}
        results = {n: r for n, r in self.probes.items() if n in names}
        ids = {i.metadata.name: c.id for i in instances if (c := observed.container(i.container_name)) is not None}
        for n, r in results.items():
            if r.reachable and r.version and n in ids:
                self.versions[n] = (ids[n], r.version)
        known = {n: v for n, (cid, v) in self.versions.items() if ids.get(n) == cid}
        found = health.findings(state, results, self.failures, options.unhealthy_after, known)
        restarts = health.restarts(state, observed, self.failures, probed)
        return Plan(the_plan.changes + restarts, sort_findings(the_plan.findings + found), the_plan.notes)

    def apply(
        self,
        result: PassResult,
        changes: tuple[Change, ...] | None = None,
        *,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_start: Callable[[Change], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> tuple[Outcome, ...]:
        """Execute the plan's changes (or `changes`, a part of them), recording each outcome as soon as it is known:
        a crash loses nothing already done."""

        def recorded(outcome: Outcome) -> None:
            self.history.record_outcome(result.pass_id, outcome)
            if outcome.status == "ok" and outcome.change.action is Action.ADOPT:
                d = outcome.change.payload
                assert isinstance(d, Adopt), "an ADOPT change carries an Adopt"
                self._record_adoption(Adoption(outcome.change.key, d.container_id, d.spec_hash))
            if outcome.status == "ok" and outcome.change.kind == spec.Kind.VOLUME:
                # lost from now on if it vanishes, and known by its identity (labels) if it is made again
                try:
                    identity = self.runtime.volume_identity(outcome.change.target)
                except errors.EngineError:
                    identity = None  # known at the next pass's observation
                self._mark_volumes_seen({outcome.change.target: identity})
            if on_outcome is not None:
                on_outcome(outcome)

        todo = result.plan if changes is None else Plan(changes, result.plan.findings, result.plan.notes)
        return applying.apply(
            todo,
            self.runtime,
            parallel=self.options.parallel,
            on_outcome=recorded,
            on_start=on_start,
            should_stop=should_stop,
            guard=self.guard,
        )

    def finish(
        self, result: PassResult, outcomes: tuple[Outcome, ...] = (), backoffs: Mapping[str, Backoff] | None = None
    ) -> None:
        """Close the pass in the history, with the state of every resource."""
        if result.pass_id == NOT_RECORDED:
            raise errors.DbstateError("a plan read with record=False is no pass: it cannot be finished")
        failed = sum(1 for o in outcomes if o.status != "ok")
        self.history.finish_pass(
            result.pass_id, len(result.plan.changes), failed, len(result.plan.findings), len(result.loaded.errors)
        )
        self.history.set_resources(self.status_rows(result, outcomes, backoffs or {}))
        keep, now = self.options.keep_history, self.clock.time()
        state = result.loaded.state
        self.history.set_overview(
            overview.build(
                state,
                result.plan,
                outcomes,
                result.revision.commit,
                result.probes or self.probes,
                now,
                result.durations,
            )
        )
        if keep is not None and now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            self.history.prune(now - keep)

    def status_rows(
        self, result: PassResult, outcomes: tuple[Outcome, ...], backoffs: Mapping[str, Backoff]
    ) -> list[ResourceStatus]:
        """Per resource: failing (last error, attempts, next retry), drifted, findings, invalid, or in-sync."""
        rev = result.revision.commit
        failed = {o.change.key: o.message for o in outcomes if o.status == "failed"}
        done = {o.change.key for o in outcomes if o.status == "ok"}
        drifted = {c.key for c in result.plan.changes} - done
        findings: dict[str, str] = {}
        for f in result.plan.findings:
            findings.setdefault(f"{f.kind}/{f.name}", f"{f.type.value}: {f.message}")
        suspended = {f"{n.kind}/{n.name}": n.message for n in result.plan.notes if n.type is NoteType.SUSPENDED}
        rows: list[ResourceStatus] = []
        now_wall, now_mono = self.clock.time(), self.clock.monotonic()
        for key in sorted(set(declared_keys(result.loaded.state)) | set(findings) | set(failed)):
            b = backoffs.get(key)
            if key in failed or b is not None:
                message = failed.get(key) or (b.last_error if b else "")
                next_retry = now_wall + (b.due - now_mono) if b is not None else None
                rows.append(ResourceStatus(key, "failing", message, b.attempts if b else 1, next_retry, rev))
            elif key in suspended:
                rows.append(ResourceStatus(key, "suspended", suspended[key], 0, None, rev))
            elif key in drifted:
                rows.append(ResourceStatus(key, "drifted", "changes pending", 0, None, rev))
            elif key in findings:
                rows.append(ResourceStatus(key, "findings", findings[key], 0, None, rev))
            else:
                rows.append(ResourceStatus(key, "in-sync", "", 0, None, rev))
        for kind, name in sorted(result.loaded.state.held_back):
            rows.append(
                ResourceStatus(f"{kind}/{name}", "invalid", "its declaration has errors: left alone", 0, None, rev)
            )
        return rows

    # -- the loop's pass -------------------------------------------------------------------------------------------

    def key_of(self, container: str) -> str | None:
        """The resource (Kind/name) whose container this is (by name, or by ID as last observed), in the desired
        state last read."""
        if self.last is None:
            return None
        by_id = next((c.name for c in self.last.observed.containers if c.id == container), None)
        container = by_id or container
        state = self.last.loaded.state
        for inst in state.instances:
            if inst.container_name == container:
                return f"{inst.kind}/{inst.metadata.name}"
        for con in state.consumers:
            if con.container_name == container:
                return f"{con.kind}/{con.metadata.name}"
        for exp in state.exporters:
            if exp.container_name == container:
                return f"{exp.kind}/{exp.metadata.name}"
        return None

    def probe_due_in(self) -> float | None:
        """Seconds until the probes are due again (0: now); None when this reconciler does not probe."""
        probe = self.options.probe
        if probe is None or self.prober is None:
            return None
        if self.last_probe is None:
            return 0.0
        return max(0.0, self.last_probe + probe.interval - self.clock.monotonic())

    def reconcile(self, request: Request) -> PassReport:
        """One whole pass for the loop: changes of keys that wait for their retry are deferred, the rest applied.
        Probes run when they are due (on the first pass, then every interval), not on every event."""
        with self._passing:
            return self._reconcile(request)

    def _reconcile(self, request: Request) -> PassReport:
        t0 = self.clock.monotonic()
        due = self.probe_due_in()
        result = self._hold_failed_upgrades(
            self.plan(probe_now=due is not None and due <= 0.5, trigger=request.trigger)
        )
        now = tuple(c for c in result.plan.changes if not request.deferred(c.key))
        pending = tuple(sorted({c.key for c in result.plan.changes if request.deferred(c.key)}))
        outcomes = self.apply(result, now, should_stop=request.should_stop) if now else ()
        for o in outcomes:
            if o.change.action is Action.UPGRADE and o.status == "failed":
                self.failed_upgrades[o.change.key] = (_spec_hash(o.change), o.message)
        self.last, self.last_outcomes = result, outcomes
        # a probe taken before a change to its instance (created, started, restarted) says nothing about it now: it
        # is dropped until the next probe (the count of failures stays, so restarts keep backing off)
        touched = {o.change.name for o in outcomes if o.status == "ok" and o.change.kind == spec.Kind.DATABASE_INSTANCE}
        for name in touched:
            self.probes.pop(name, None)
        probes_now = {n: r for n, r in result.probes.items() if n not in touched}
        counts: dict[str, int] = {}
        for f in result.plan.findings:
            counts[f.type.value] = counts.get(f.type.value, 0) + 1
        up = {}
        for inst in result.loaded.state.instances:
            c = result.observed.container(inst.container_name)
            running = c is not None and c.state == "running" and c.health in (None, "healthy")
            probed = probes_now.get(inst.metadata.name)
            up[inst.metadata.name] = int(running and (probed is None or probed.reachable))
        drifted = frozenset(c.key for c in result.plan.changes)
        finding_keys = frozenset(f"{f.kind}/{f.name}" for f in result.plan.findings)
        return PassReport(
            reconcile_id=uuid.uuid4().hex[:12],
            trigger=request.trigger,
            revision=result.revision.commit,
            dirty=result.revision.dirty,
            duration=self.clock.monotonic() - t0,
            outcomes=outcomes,
            pending=pending,
            drifted=drifted,
            findings=counts,
            finding_keys=finding_keys,
            errors=len(result.loaded.errors),
            health=up,
            in_sync_keys=frozenset(declared_keys(result.loaded.state)) - drifted - finding_keys,
            problems=result.loaded.errors,
            probes=probes_now,
            found=result.plan.findings,
        )

    def record_failure(self, trigger: str, started: float, error: str) -> None:
        """A pass that failed as a whole (the loop retries it): in the history, the error redacted."""
        with contextlib.suppress(errors.StateError):  # the state database is the trouble: the loop's log says so
            self.history.record_failed_pass(
                self.options.command, trigger, started, secrets.scrub(error, set(self.secrets))
            )

    def record_status(self, report: PassReport, backoffs: Mapping[str, Backoff]) -> None:
        """After the loop has put failed keys on backoff: the pass's status rows, with their next retry."""
        if self.last is not None:
            self.finish(self.last, self.last_outcomes, backoffs)


def _spec_hash(c: Change) -> str:
    return str(c.labels.get(SPEC_HASH, ""))
