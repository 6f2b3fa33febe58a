"""What a command asks of the engine (where the desired state and the engine are; prune, parallelism, probes), as
plain frozen data: cheap to import, so that a command builds its options without loading the engine or docker-py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from controller.core.scope import Scope

SourceMode = Literal["worktree", "commit"]  # the files on disk, or only what is committed at HEAD


@dataclass(frozen=True)
class Target:
    """What a command works on: a desired-state directory (and its env file), an engine, a state database."""

    directory: Path
    env_file: Path | None = None  # None: .workspace/.env when it exists
    docker_host: str | None = None  # None: $DOCKER_HOST, then the default socket
    state: Path | None = None  # None: $DBSTATE_STATE, then .dbstate/state.db
    max_file_bytes: int | None = None  # None: the loader's defaults (adapters/desired.Limits)
    max_total_bytes: int | None = None
    backup_dir: Path | None = None  # None: beside the state database (adapters/backups.default_dir)
    host: str | None = None  # with Host documents: only this engine (None: every engine, or the instance's own)
    backup_key: Path | None = None  # None: `backup.key` beside the state database (adapters/backups.default_key)


@dataclass(frozen=True)
class ProbeOptions:
    """Probing the servers in a pass (`plan --probe`, `run`): how long each may take, after how many consecutive
    failures an instance is `unhealthy`, and (run) how often to probe."""

    timeout: float = 2.0
    unhealthy_after: int = 1
    interval: float = 0.0  # probe when this long has passed since the last probe (0: every pass)
    via: str = "direct"  # direct (a connection to the container's address) | exec (its own client inside) | auto


@dataclass(frozen=True)
class PassOptions:
    command: str  # plan | apply | run: recorded with the pass
    prune: bool = False
    parallel: int = 4
    probe: ProbeOptions | None = None
    scope: Scope = field(default_factory=Scope)  # by default only what dbstate made
    keep_history: float | None = 30 * 86400.0  # seconds of passes the history keeps (None: all)
    ignore_window: str | None = None  # apply --ignore-window: who and why (recorded with the pass); None: windows hold
