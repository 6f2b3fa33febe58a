"""Composition of one engine's parts: builds the adapters (the desired-state source, the Docker engine, the state
database, the probes, the lease), hands them to the reconciler, and binds the data operations to them. No decision
lives here; the commands call it."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.adapters import backups, desired, facts, lease, store
from controller.adapters.docker import DockerRuntime, SwarmRuntime, TLSFiles
from controller.adapters.shell import DockerShell
from controller.adapters.source import DirectorySource, EngineSource, SharedSource
from controller.core import errors, live, placement, spec
from controller.core.adoption import Adoption
from controller.core.dumps import Manifest
from controller.core.importer import Found
from controller.core.options import PassOptions, SourceMode, Target
from controller.engine import backing, migrating, upgrading
from controller.engine.guard import Guard
from controller.engine.history import MemoryHistory
from controller.engine.ports import History, Prober
from controller.engine.reconciler import PassResult as PassResult
from controller.engine.reconciler import Reconciler as Reconciler
from controller.wiring import local

Progress = Callable[[str], None]
Move = migrating.Move  # the names the commands use, from the composition root
Server = backing.Server
moves = migrating.moves

if TYPE_CHECKING:
    from controller.core.health import ProbeResult
    from controller.engine.auditing import AuditResult


@dataclass(frozen=True)
class EngineRef:
    """One Docker engine: a `kind: Host` document's, or (none declared) the one of --docker-host."""

    name: str
    url: str | None  # None: --docker-host, then $DOCKER_HOST, then the default socket
    tls: TLSFiles | None = None
    probe_via: str | None = None  # the Host's own spec.probeVia, over --probe-via
    mode: str = "engine"  # swarm: its containers are services (adapters/docker/swarm.py)
    nodes: tuple[tuple[str, str, TLSFiles | None], ...] = ()  # swarm: (node label, its engine's endpoint, tls)


def declared(target: Target, source: SourceMode = "worktree") -> list[EngineRef]:
    """The engines of the desired state as it reads now. A Host whose declaration has errors is not among them
    (its resources are held back), and neither is a Host added later: `run` takes it up when restarted."""
    hosts = _whole(target, source).state.hosts if target.directory.is_dir() else ()
    if not hosts:
        return [EngineRef(placement.DEFAULT, target.docker_host)]
    out = []
    for h in hosts:
        # a swarm's tasks sit on overlay networks the controller is not on: probed through their own client
        via = h.spec.probe_via or ("exec" if h.spec.mode == "swarm" else None)
        nodes = tuple((label, n.endpoint, _tls(target, n.tls)) for label, n in sorted(h.spec.nodes.items()))
        out.append(EngineRef(h.metadata.name, h.spec.endpoint, _tls(target, h.spec.tls), via, h.spec.mode, nodes))
    return out


def _tls(target: Target, t: spec.HostTLS | None) -> TLSFiles | None:
    return None if t is None else (_file(target, t.ca), _file(target, t.cert), _file(target, t.key))


def _whole(target: Target, source: SourceMode) -> spec.Loaded:
    return DirectorySource(target.directory, target.env_file, source, limits=_limits(target)).load().loaded


def _file(target: Target, path: str) -> str:
    """A Host's TLS file: absolute, or relative to the desired-state directory."""
    return str(target.directory / path) if not path.startswith("/") else path


def pick(refs: Sequence[EngineRef], host: str | None) -> EngineRef:
    """The engine a one-engine command works on: --host, or the only one."""
    if host is not None:
        for r in refs:
            if r.name == host:
                return r
        raise errors.DbstateError(f"--host {host}: no such Host (declared: {', '.join(r.name for r in refs)})")
    if len(refs) > 1:
        raise errors.DbstateError(
            f"{len(refs)} Hosts are declared ({', '.join(r.name for r in refs)}): say which engine with --host NAME"
        )
    return refs[0]


@dataclass
class Wired:
    engine: EngineRef
    reconciler: Reconciler
    runtime: DockerRuntime
    shell: DockerShell  # the databases' own tools, in their containers (backups, restores, upgrades)
    backups: backups.BackupDir
    lease: lease.EngineLease | None = None  # with `lease_ttl`: every mutating call of the runtime is fenced by it
    borrowed: bool = False  # the lease is a running controller's (a job it performs): held and renewed by it

    # The data operations (engine/backing, upgrading, migrating) bound to this engine's shell, runtime and backups.
    def servers(self, result: PassResult, names: tuple[str, ...]) -> list[backing.Server | str]:
        return backing.running(result.loaded.state, result.observed, names)

    def take(self, server: backing.Server, *, revision: str | None, reason: str, progress: Progress) -> Manifest:
        return backing.take(server, self.shell, self.backups, revision=revision, reason=reason, progress=progress)

    def verify(self, manifest: Manifest, inst: spec.DatabaseInstance, progress: Progress) -> Manifest:
        return backing.verify(manifest, inst, self.shell, self.backups, progress)

    def restore(
        self, server: backing.Server, manifest: Manifest, *, revision: str | None, progress: Progress
    ) -> Manifest:
        return backing.restore(
            server, manifest, self.shell, self.backups, self.runtime, revision=revision, progress=progress
        )

    def restore_to_new_volume(
        self, server: backing.Server, manifest: Manifest, volume: str, *, revision: str | None, progress: Progress
    ) -> tuple[spec.DatabaseInstance, str]:
        return upgrading.restore_to_new_volume(
            server, manifest, volume, self.runtime, self.shell, self.backups, revision=revision, progress=progress
        )

    def rollback(
        self,
        inst: spec.DatabaseInstance,
        current: live.Container,
        kept: live.Container,
        *,
        discard_writes: bool,
        revision: str | None,
        progress: Progress,
    ) -> Manifest:
        return upgrading.rollback(
            inst,
            current,
            kept,
            self.runtime,
            self.shell,
            self.backups,
            discard_writes=discard_writes,
            revision=revision,
            progress=progress,
        )

    def migrate(
        self,
        inst: spec.DatabaseInstance,
        c: live.Container,
        todo: Sequence[migrating.Move],
        result: PassResult,
        progress: Progress,
    ) -> None:
        migrating.migrate(
            inst,
            c,
            list(todo),
            result.loaded.state.volumes,
            self.runtime,
            self.runtime,
            result.revision.commit,
            progress,
            result.observed.containers,
        )


@contextlib.contextmanager
def _history(
    path: Path | None,
    required: bool,
    unusable: Callable[[str], None] | None = None,
    host: str = placement.DEFAULT,
) -> Iterator[tuple[History, store.Store | None]]:
    """The state database; without `required`, an in-memory history when it cannot be opened (a read-only
    directory): dbstate then works without its memory of earlier passes. With `unusable` (the controller), a state
    database that is corrupt or from a newer release is reported through it and an in-memory history used: the
    engine's own facts (adapters/facts.py) still protect the data, and the controller keeps converging."""
    path = path or store.default_path()
    if required:
        try:
            db: store.Store | None = store.Store(path, host=host)
        except errors.StateError as e:
            if unusable is None:
                raise
            unusable(str(e))
            db = None
        except Exception as e:
            raise errors.DbstateError(f"cannot open the state database {path}: {type(e).__name__}: {e}") from e
    else:
        db = store.open_optional(path, host)
    try:
        yield (db if db is not None else MemoryHistory()), db
    finally:
        if db is not None:
            db.close()


def _limits(target: Target) -> desired.Limits:
    return desired.Limits.raised(target.max_file_bytes, target.max_total_bytes)


def _runtime(
    engine: EngineRef, db: store.Store | None, retry_budget: float, progress: Callable[[str], None] | None
) -> DockerRuntime:
    common: dict[str, Any] = {
        "tls": engine.tls,
        "known_aliases": db.endpoint_aliases() if db is not None else None,
        "save_aliases": db.save_endpoint_aliases if db is not None else None,
        "retry_budget": retry_budget,
        "progress": progress,
    }
    if engine.mode == "swarm":
        return SwarmRuntime(engine.url, nodes={label: (url, tls) for label, url, tls in engine.nodes}, **common)
    return DockerRuntime(engine.url, **common)


@contextlib.contextmanager
def reconciler(
    target: Target,
    options: PassOptions,
    *,
    host: str | None = None,
    instance: str | None = None,
    require_store: bool = False,
    retry_budget: float = 30.0,
    progress: Callable[[str], None] | None = None,
    source: SourceMode = "worktree",
    lease_ttl: float | None = None,
    state_unusable: Callable[[str], None] | None = None,
    borrow: lease.EngineLease | None = None,
) -> Iterator[Wired]:
    """The reconciler of one engine for the commands that work on one: `host` (or --host), else the engine of
    `instance`, else the only one. `borrow`: a running controller's lease of that engine, which fences this one's
    changes too (a one-off job the controller performs)."""
    refs = declared(target, source)
    if host is None and target.host is None and instance is not None and len(refs) > 1:
        host = placement.where(_whole(target, source).state).get(f"DatabaseInstance/{instance}")
    engine = pick(refs, host or target.host)
    whole = DirectorySource(target.directory, target.env_file, source, limits=_limits(target))
    with _wire(
        target, options, engine, whole, require_store, retry_budget, progress, lease_ttl, state_unusable, borrow
    ) as w:
        yield w


@contextlib.contextmanager
def reconcilers(
    target: Target,
    options: PassOptions,
    *,
    host: str | None = None,
    require_store: bool = False,
    retry_budget: float = 30.0,
    progress: Callable[[str], None] | None = None,
    source: SourceMode = "worktree",
    lease_ttl: float | None = None,
    state_unusable: Callable[[str], None] | None = None,
) -> Iterator[list[Wired]]:
    """One reconciler per engine (or only `host`'s), each with its own runtime, lease, history connection and
    source of its part of the desired state: `plan`, `apply` and `run` over several engines."""
    refs, host = declared(target, source), host or target.host
    chosen = [pick(refs, host)] if host is not None else refs
    whole = SharedSource(DirectorySource(target.directory, target.env_file, source, limits=_limits(target)))
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                _wire(target, options, e, whole, require_store, retry_budget, progress, lease_ttl, state_unusable)
            )
            for e in chosen
        ]


@contextlib.contextmanager
def _wire(
    target: Target,
    options: PassOptions,
    engine: EngineRef,
    whole: DirectorySource | SharedSource,
    require_store: bool,
    retry_budget: float,
    progress: Callable[[str], None] | None,
    lease_ttl: float | None,
    state_unusable: Callable[[str], None] | None,
    borrow: lease.EngineLease | None = None,
) -> Iterator[Wired]:
    """A reconciler over the real adapters. Probes (psycopg, pymysql, redis, or the engine's own clients through
    exec) are wired only when the options ask for them; with `lease_ttl` (a writer), the engine lease, which fences
    every change, and the volume facts are written to the engine as well as read from it."""
    if options.probe is not None and engine.probe_via is not None:
        options = dataclasses.replace(options, probe=dataclasses.replace(options.probe, via=engine.probe_via))
    with _history(target.state, require_store, state_unusable, engine.name) as (history, db):
        runtime = _runtime(engine, db, retry_budget, progress)
        held = borrow
        if held is None and lease_ttl is not None:
            held = lease.EngineLease(runtime, ttl=lease_ttl)
        if held is not None:
            runtime.fence, runtime.gate = held.confirm, held.check_clock
        shell, kept = DockerShell(runtime), local.backup_dir(target)
        try:
            r = Reconciler(
                EngineSource(whole, engine.name),
                runtime,
                runtime,
                history,
                options,
                prober=_prober(options.probe.via, shell) if options.probe is not None else None,
                facts=facts.EngineFacts(runtime, write=held is not None),
                guard=Guard(shell, kept, runtime, progress or _log_progress),
            )
            yield Wired(engine, r, runtime, shell, kept, held, borrowed=borrow is not None)
        finally:
            runtime.close()


def _log_progress(message: str) -> None:
    logging.getLogger("dbstate.backup").info("%s", message)


def _prober(via: str = "direct", shell: DockerShell | None = None) -> Prober:
    from controller.adapters import probes  # only a command that probes loads the probes

    return probes.Probes(via, shell)


def audit(target: Target, timeout: float, engine: EngineRef) -> AuditResult:
    """`dbstate audit` of one engine: read-only; every container inspected and every database probed."""
    from controller.engine import auditing

    with _history(target.state, False, host=engine.name) as (history, db):
        runtime = _runtime(engine, db, 30.0, None)
        try:
            return auditing.run(
                EngineSource(DirectorySource(target.directory, target.env_file, limits=_limits(target)), engine.name),
                runtime,
                _prober(),
                history,
                timeout,
            )
        finally:
            runtime.close()


def inventory(target: Target) -> tuple[list[Found], live.LiveState, str, bool]:
    """For `dbstate import`: every container (and, on a swarm manager, every service) with what its image adds, the
    observed state, the engine's address, and whether it is a swarm's manager."""
    from controller.adapters.inventory import inventory as read

    ref = pick(declared(target), target.host)
    runtime = _runtime(ref, None, 10.0, None)
    if ref.mode != "swarm" and runtime.is_swarm_manager():
        runtime.close()
        ref = dataclasses.replace(ref, mode="swarm", probe_via=ref.probe_via or "exec")
        runtime = _runtime(ref, None, 10.0, None)
    try:
        found, observed = read(runtime)
        return found, observed, runtime.shown, ref.mode == "swarm"
    finally:
        runtime.close()


def probe_logins(
    target: Target, instances: Sequence[spec.DatabaseInstance], observed: live.LiveState, timeout: float = 3.0
) -> dict[str, ProbeResult]:
    """For `dbstate import`: one read-only login per instance with the auth it guessed (direct, else through the
    container's own client)."""
    runtime = _runtime(pick(declared(target), target.host), None, 10.0, None)
    try:
        return _prober("auto", DockerShell(runtime)).probe_all(
            instances, observed, timeout=timeout, internal=frozenset()
        )
    finally:
        runtime.close()


def record_adoptions(target: Target, adoptions: Sequence[Adoption], host: str | None = None) -> None:
    """Ownership of containers taken over as they are: in the state database, and on the engine (`host`'s)."""
    with _history(target.state, True) as (history, _db):
        runtime = _runtime(pick(declared(target), host or target.host), None, 10.0, None)
        try:
            kept = facts.EngineFacts(runtime, write=True)
            for a in adoptions:
                history.record_adoption(a)
                kept.record_adoption(a)
        finally:
            runtime.close()
