"""One reconcile pass, wired: load the desired state, observe the engine, diff with the store's history, record it;
and apply a plan with every outcome recorded as it happens. The CLI (and later the loop) call this; it holds no
policy of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from controller.adapters import desired, git, store
from controller.adapters.docker import DockerRuntime
from controller.core import diff, errors, live, secrets, spec
from controller.core.plan import Change, Plan
from controller.engine import apply as applying


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
    ) -> None:
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
        loaded = desired.load(directory, env_file)
        state = loaded.state
        names = [i.container_name for i in state.instances] + [c.container_name for c in state.consumers]
        observed = self.runtime.observe(inspect=names)
        rev = git.revision(directory)
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

    def apply(
        self,
        result: PassResult,
        *,
        parallel: int,
        on_outcome: Callable[[applying.Outcome], None] | None = None,
        on_start: Callable[[Change], None] | None = None,
    ) -> tuple[applying.Outcome, ...]:
        def recorded(outcome: applying.Outcome) -> None:
            if self.store is not None and result.pass_id is not None:
                self.store.record_outcome(result.pass_id, outcome)
                if outcome.status == "ok" and outcome.change.kind == "Volume":
                    self.store.mark_volumes_seen([outcome.change.target])  # lost from now on if it vanishes
            if on_outcome is not None:
                on_outcome(outcome)

        return applying.apply(result.plan, self.runtime, parallel=parallel, on_outcome=recorded, on_start=on_start)

    def finish(self, result: PassResult, outcomes: tuple[applying.Outcome, ...] = ()) -> None:
        if self.store is not None and result.pass_id is not None:
            failed = sum(1 for o in outcomes if o.status != "ok")
            self.store.finish_pass(
                result.pass_id, len(result.plan.changes), failed, len(result.plan.findings), len(result.loaded.errors)
            )
