"""Composition only: builds the adapters (the desired-state source, the Docker engine, the state database, the
probes, the lease) and hands them to the engine. No decision lives here; the commands call it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.adapters import backups, desired, facts, lease, store
from controller.adapters.docker import DockerRuntime
from controller.adapters.shell import DockerShell
from controller.adapters.source import DirectorySource
from controller.core import errors, live
from controller.core.adoption import Adoption
from controller.core.importer import Found
from controller.engine import backing
from controller.engine.history import MemoryHistory
from controller.engine.options import PassOptions, SourceMode, Target
from controller.engine.ports import History, Prober
from controller.engine.reconciler import Reconciler

if TYPE_CHECKING:
    from controller.engine.auditing import AuditResult


@dataclass
class Wired:
    reconciler: Reconciler
    runtime: DockerRuntime
    shell: DockerShell  # the databases' own tools, in their containers (backups, restores, upgrades)
    backups: backups.BackupDir
    lease: lease.EngineLease | None = None  # with `lease_ttl`: every mutating call of the runtime is fenced by it


def backup_dir(target: Target) -> backups.BackupDir:
    return backups.BackupDir(target.backup_dir or backups.default_dir(target.state or store.default_path()))


@contextlib.contextmanager
def _history(
    path: Path | None, required: bool, unusable: Callable[[str], None] | None = None
) -> Iterator[tuple[History, store.Store | None]]:
    """The state database; without `required`, an in-memory history when it cannot be opened (a read-only
    directory): dbstate then works without its memory of earlier passes. With `unusable` (the controller), a state
    database that is corrupt or from a newer release is reported through it and an in-memory history used: the
    engine's own facts (adapters/facts.py) still protect the data, and the controller keeps converging."""
    path = path or store.default_path()
    if required:
        try:
            db: store.Store | None = store.Store(path)
        except errors.StateError as e:
            if unusable is None:
                raise
            unusable(str(e))
            db = None
        except Exception as e:
            raise errors.DbstateError(f"cannot open the state database {path}: {type(e).__name__}: {e}") from e
    else:
        db = store.open_optional(path)
    try:
        yield (db if db is not None else MemoryHistory()), db
    finally:
        if db is not None:
            db.close()


def _limits(target: Target) -> desired.Limits:
    return desired.Limits.raised(target.max_file_bytes, target.max_total_bytes)


def _runtime(
    target: Target, db: store.Store | None, retry_budget: float, progress: Callable[[str], None] | None
) -> DockerRuntime:
    return DockerRuntime(
        target.docker_host,
        known_aliases=db.endpoint_aliases() if db is not None else None,
        save_aliases=db.save_endpoint_aliases if db is not None else None,
        retry_budget=retry_budget,
        progress=progress,
    )


@contextlib.contextmanager
def reconciler(
    target: Target,
    options: PassOptions,
    *,
    require_store: bool = False,
    retry_budget: float = 30.0,
    progress: Callable[[str], None] | None = None,
    source: SourceMode = "worktree",
    lease_ttl: float | None = None,
    state_unusable: Callable[[str], None] | None = None,
) -> Iterator[Wired]:
    """A reconciler over the real adapters, for `plan`, `apply` and `run`. Probes (psycopg, pymysql, redis) are
    wired only when the options ask for them; with `lease_ttl` (a writer), the engine lease, which fences every change,
    and the volume facts are written to the engine as well as read from it."""
    with _history(target.state, require_store, state_unusable) as (history, db):
        runtime = _runtime(target, db, retry_budget, progress)
        held = None
        if lease_ttl is not None:
            held = lease.EngineLease(runtime, ttl=lease_ttl)
            runtime.fence, runtime.gate = held.confirm, held.check_clock
        shell, kept = DockerShell(runtime), backup_dir(target)
        try:
            r = Reconciler(
                DirectorySource(target.directory, target.env_file, source, limits=_limits(target)),
                runtime,
                runtime,
                history,
                options,
                prober=_prober(options.probe.via, shell) if options.probe is not None else None,
                facts=facts.EngineFacts(runtime, write=held is not None),
                guard=backing.Guard(shell, kept, runtime, progress or _log_progress),
            )
            yield Wired(r, runtime, shell, kept, held)
        finally:
            runtime.close()


def _log_progress(message: str) -> None:
    logging.getLogger("dbstate.backup").info("%s", message)


def _prober(via: str = "direct", shell: DockerShell | None = None) -> Prober:
    from controller.adapters import probes  # only a command that probes loads the probes

    return probes.Probes(via, shell)


def audit(target: Target, timeout: float) -> AuditResult:
    """`dbstate audit`: read-only; every container inspected and every database probed."""
    from controller.engine import auditing

    with _history(target.state, False) as (history, db):
        runtime = _runtime(target, db, 30.0, None)
        try:
            return auditing.run(
                DirectorySource(target.directory, target.env_file, limits=_limits(target)),
                runtime,
                _prober(),
                history,
                timeout,
            )
        finally:
            runtime.close()


def inventory(target: Target) -> tuple[list[Found], live.LiveState, str]:
    """For `dbstate import`: every container with what its image adds, the observed state, and the engine's address."""
    from controller.adapters.inventory import inventory as read

    runtime = _runtime(target, None, 10.0, None)
    try:
        found, observed = read(runtime)
        return found, observed, runtime.host
    finally:
        runtime.close()


def record_adoptions(target: Target, adoptions: Sequence[Adoption]) -> None:
    """Ownership of containers taken over as they are: in the state database, and on the engine."""
    with _history(target.state, True) as (history, _db):
        runtime = _runtime(target, None, 10.0, None)
        try:
            kept = facts.EngineFacts(runtime, write=True)
            for a in adoptions:
                history.record_adoption(a)
                kept.record_adoption(a)
        finally:
            runtime.close()
