"""Executes a plan: dependency order, bounded concurrency, one outcome per change even after failures.

apply never re-decides: it runs exactly the changes it is given. Order comes from the data: a change waits for every
change of the resources it `requires` (networks and volumes before containers, instances before the consumers that
use them) and for the earlier changes of its own resource. A failed change blocks only what depends on it.

Recreating is crash-safe by construction: the old container is stopped (and waited for) before anything else, then
renamed `<name>.dbstate-old`, the new one created and started under the declared name, and the old one removed. Killed
at any step, the next pass sees a stopped old container (recreate again), a leftover `.dbstate-old` (removed first),
or a new container not yet started (started): the data volume is never mounted by two running servers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from controller.core import errors, plan, spec
from controller.core.labels import OLD_SUFFIX
from controller.core.secrets import Secret, reveal
from controller.engine.ports import DataGuard, Runtime

STOP_TIMEOUT = 30  # seconds a database gets to shut down cleanly before a recreate goes on
Outcome = plan.Outcome


def dependencies(changes: Sequence[plan.Change]) -> list[set[int]]:
    """For each change, the indexes of the changes it must wait for."""
    by_key: dict[str, list[int]] = {}
    for i, c in enumerate(changes):
        by_key.setdefault(c.key, []).append(i)
    deps: list[set[int]] = []
    for i, c in enumerate(changes):
        mine = {j for j in by_key[c.key] if j < i}  # earlier steps of the same resource, in plan order
        for key in c.requires:
            mine.update(by_key.get(key, ()))
        mine.discard(i)
        deps.append(mine)
    return deps


def apply(
    the_plan: plan.Plan,
    runtime: Runtime,
    *,
    parallel: int = 4,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_start: Callable[[plan.Change], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    guard: DataGuard | None = None,
) -> tuple[Outcome, ...]:
    """`guard` takes the backups that destructive changes ask for and runs dump-restore upgrades; without one, such a
    change fails (nothing is recreated without its backup)."""
    changes = list(the_plan.changes)
    deps = dependencies(changes)
    outcomes: dict[int, Outcome] = {}
    running: dict[Future[None], int] = {}
    started: dict[int, float] = {}
    lost: list[str] = []  # the lease was lost (fencing): nothing more is started

    def settle(i: int, outcome: Outcome) -> None:
        outcomes[i] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="dbstate-apply") as pool:
        while len(outcomes) < len(changes):
            for i, c in enumerate(changes):
                if i in outcomes or i in started:
                    continue
                failed = [j for j in deps[i] if j in outcomes and outcomes[j].status != "ok"]
                if failed:
                    first = changes[failed[0]]
                    settle(
                        i, Outcome(c, "skipped", f"blocked: {first.action.value} {first.target} did not succeed", 0.0)
                    )
                    continue
                if all(j in outcomes for j in deps[i]):
                    if should_stop() or lost:  # shutting down, or no longer the writer: nothing new starts
                        settle(i, Outcome(c, "skipped", lost[0] if lost else "shutting down", 0.0))
                        continue
                    if on_start is not None:
                        on_start(c)
                    started[i] = time.monotonic()
                    running[pool.submit(execute, c, runtime, guard)] = i
            if not running:
                continue  # everything left was settled as skipped in this round
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                seconds = time.monotonic() - started[i]
                exc = fut.exception()
                if exc is None:
                    settle(i, Outcome(changes[i], "ok", "done", seconds))
                elif isinstance(exc, errors.LeaseLost):
                    lost.append(str(exc))
                    settle(i, Outcome(changes[i], "skipped", str(exc), seconds))
                else:
                    settle(i, Outcome(changes[i], "failed", describe(exc), seconds))
    return tuple(outcomes[i] for i in range(len(changes)))


def describe(exc: BaseException) -> str:
    """A failure as one line that says what to do; never a traceback, never a secret (our messages carry none)."""
    if isinstance(exc, errors.ImageNotFound):
        return f"{exc} (build or load the image on this engine, or fix spec.image)"
    if isinstance(exc, errors.EngineUnavailable | errors.EngineTransient):
        return f"{exc} (gave up after the retry budget; the next pass will try again)"
    if isinstance(exc, errors.EnginePermanent):
        return f"{exc} (the engine refused; retrying will not help until the cause is fixed)"
    if isinstance(exc, errors.DbstateError):
        return str(exc)
    return f"unexpected {type(exc).__name__}"


def execute(c: plan.Change, runtime: Runtime, guard: DataGuard | None = None) -> None:
    """One change, as engine calls; a backup first when the change asks for one."""
    d = c.payload
    if c.backup_first or c.action is plan.Action.UPGRADE:
        if guard is None:
            raise errors.BackupError(f"{c.target}: no backup can be taken here (no backup directory): not changed")
        if c.action is plan.Action.UPGRADE:
            guard.upgrade(c)
            return
        guard.before(c)
    if isinstance(c.resource, spec.Exporter) and c.action in (plan.Action.CREATE, plan.Action.RECREATE):
        if guard is None:
            raise errors.DbstateError(f"{c.target}: its monitoring login cannot be made here: not created")
        guard.monitoring_login(c.resource)
    if isinstance(d, plan.NetworkSpec):
        runtime.create_network(c.target, d.driver, d.internal, d.labels)
    elif isinstance(d, plan.VolumeSpec):
        runtime.create_volume(c.target, d.driver, d.labels)
    elif c.action is plan.Action.CREATE:
        _create(c, runtime)
        runtime.start(c.target)
    elif c.action is plan.Action.ADOPT:
        pass  # ownership is a record, not an engine call: the reconciler keeps it when this outcome is ok
    elif c.action is plan.Action.START:
        runtime.start(c.target)
    elif isinstance(d, plan.Attach):
        runtime.connect(c.target, d.network, d.aliases, d.reconnect)
    elif isinstance(d, plan.Detach):
        runtime.disconnect(c.target, d.network)
    elif c.action is plan.Action.REMOVE:
        runtime.remove_container(c.target)
    elif c.action is plan.Action.RESTART:
        runtime.stop(c.target, STOP_TIMEOUT)
        runtime.start(c.target)
    elif c.action is plan.Action.RECREATE:
        old = c.target + OLD_SUFFIX
        runtime.stop(c.target, STOP_TIMEOUT)  # first: no second server may ever start on the volume
        runtime.rename(c.target, old)
        _create(c, runtime)
        runtime.start(c.target)
        runtime.remove_container(old)
        if guard is not None and c.backup_first:
            guard.after(c)
    else:  # pragma: no cover - the action set is closed
        raise errors.DbstateError(f"cannot {c.action.value} a {c.kind}")


def _create(c: plan.Change, runtime: Runtime) -> None:
    """Create the container; for a database, only on the very volumes the plan saw. Docker creates a missing named
    volume on container create, so a volume removed after the plan was made would come back empty: it must be there
    before the create, and be the same volume after it (once created, the container pins it); a container that got
    another volume is removed before it ever starts."""
    resource = c.resource
    before = {}
    if isinstance(resource, spec.DatabaseInstance):
        for v in resource.spec.volumes:
            if v.type != "volume":
                continue  # a bind mount is a host directory: Docker never makes one up
            before[v.source] = runtime.volume_identity(v.source)
            if before[v.source] is None:
                raise errors.VolumeLost(
                    f"volume {v.source} is gone: {c.target} is not created on a new, empty one (volume-lost)"
                )
    _create_container(c, runtime)
    replaced = [name for name, identity in before.items() if runtime.volume_identity(name) != identity]
    if replaced:
        runtime.remove_container(c.target)  # never started: no server ever ran on the new, empty volume
        raise errors.VolumeLost(
            f"volume {replaced[0]} was removed while {c.target} was being created and Docker made a new, empty one: "
            f"{c.target} was removed before it started (volume-lost)"
        )


def _create_container(c: plan.Change, runtime: Runtime) -> None:
    resource = c.resource
    if isinstance(resource, spec.DatabaseInstance):
        s = resource.spec
        command, volumes, ports, restart = (
            list(s.command),
            {v.source: v.target for v in s.volumes},
            list(s.ports),
            (s.restart_policy.value),
        )
        read_only = {v.source for v in s.volumes if v.read_only}
    elif isinstance(resource, spec.Consumer | spec.Exporter):
        command = list(resource.spec.command) if isinstance(resource, spec.Exporter) else []
        volumes, ports, restart = {}, [], spec.RestartPolicy.UNLESS_STOPPED.value
        read_only = set()
    else:
        raise errors.DbstateError(f"{c.key}: the plan carries no declaration to create from")
    runtime.create_container(
        name=c.target,
        image=resource.spec.image or "",
        env={k: reveal(v) for k, v in resource.spec.env.items()},
        command=command,
        labels=c.labels,
        networks={a.name: list(a.aliases) for a in resource.spec.networks},
        volumes=volumes,
        ports=ports,
        restart_policy=restart,
        read_only=read_only,
        secrets={k for k, v in resource.spec.env.items() if isinstance(v, Secret)},
    )
