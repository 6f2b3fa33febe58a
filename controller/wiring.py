"""One reconcile pass, wired: load the desired state, observe the engine, diff with the store's history, record it;
and apply a plan with every outcome recorded as it happens. The CLI (and later the loop) call this; it holds no
policy of its own."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.adapters import desired, git, store
from controller.adapters.docker import DockerRuntime
from controller.core import diff, errors, live, secrets, spec
from controller.core.plan import Change, Plan
from controller.engine import apply as applying
from controller.engine.ports import PassReport


@dataclass(frozen=True)
class PassResult:
    loaded: spec.Loaded
    observed: live.LiveState
    revision: git.Revision
    plan: Plan
    secrets: frozenset[str]
    pass_id: int | None


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
        known = self.store.endpoint_aliases() if self.store else None
        self.runtime = DockerRuntime(docker_host, known_aliases=known, retry_budget=retry_budget, progress=progress)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.runtime.close()
        if self.store is not None:
            self.store.close()

    def plan(self, directory: Path, env_file: Path | None, *, prune: bool, command: str) -> PassResult:
        rev = git.revision(directory)
        if self.source == "commit":
            if rev.commit is None:
                raise git.GitError(f"--source commit: {directory} is not a git checkout with a commit")
            with tempfile.TemporaryDirectory(prefix="dbstate-commit-") as tmp:
                exported = git.export(directory, rev.commit, Path(tmp) / "desired")
                loaded = desired.load(exported, env_file, display=directory)
        else:
            loaded = desired.load(directory, env_file)
        state = loaded.state
        names = [i.container_name for i in state.instances] + [c.container_name for c in state.consumers]
        observed = self.runtime.observe(inspect=names)
        seen = self.store.seen_volumes() if self.store else frozenset()
        acked = self.store.acknowledged("volume-lost") if self.store else frozenset()
        the_plan = diff.diff(
            state, observed, prune=prune, revision=rev.commit, seen_volumes=seen, acknowledged_lost=acked
        )
        pass_id = None
        if self.store is not None:
            self.store.save_endpoint_aliases(self.runtime.current_aliases)
            self.store.mark_volumes_seen(v.metadata.name for v in state.volumes if observed.volume(v.metadata.name))
            pass_id = self.store.begin_pass(command, rev.commit, rev.dirty)
            self.store.record_findings(pass_id, the_plan.findings)
        return PassResult(loaded, observed, rev, the_plan, frozenset(secrets.collect(state)), pass_id)

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

    def __init__(self, session: Session, directory: Path, env_file: Path | None, *, prune: bool, parallel: int) -> None:
        self.session = session
        self.directory = directory
        self.env_file = env_file
        self.prune = prune
        self.parallel = parallel
        self.last: PassResult | None = None
        self.last_outcomes: tuple[applying.Outcome, ...] = ()

    def run_pass(self, trigger: str, deferred: Callable[[str], bool], should_stop: Callable[[], bool]) -> PassReport:
        t0 = time.monotonic()
        result = self.session.plan(self.directory, self.env_file, prune=self.prune, command="run")
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
        counts: dict[str, int] = {}
        for f in result.plan.findings:
            counts[f.type.value] = counts.get(f.type.value, 0) + 1
        health = {}
        for inst in state.instances:
            c = result.observed.container(inst.container_name)
            health[inst.metadata.name] = int(c is not None and c.state == "running" and c.health in (None, "healthy"))
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
        )

    def record_status(self, report: PassReport, backoffs: Mapping[str, Any]) -> None:
        if self.last is not None:
            self.session.finish(self.last, self.last_outcomes, backoffs)
