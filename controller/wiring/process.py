"""Composition of the controller process (`dbstate run`): one loop per engine with its metrics, the sources that wake
the loops (each engine's Docker events, the files and git, a periodic git pull), notifications and the metrics'
exposition. `run.py` owns the process's life (threads, signals, the HTTP server); this module only builds its parts."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from controller.adapters import git, notify, prometheus, watch
from controller.adapters.docker import follow_events
from controller.core.options import SourceMode
from controller.engine.loop import Loop as Loop
from controller.engine.metrics import Metrics
from controller.engine.notifying import Log
from controller.engine.notifying import Notifications as Notifications
from controller.wiring.engines import Wired


def notifications(urls: Sequence[str], log: Log, known_secrets: Callable[[], set[str]]) -> Notifications | None:
    """The notifications of every pass, through Apprise (None without a URL)."""
    if not urls:
        return None
    return Notifications(notify.notifiers(urls), log, known_secrets=known_secrets)


def loops(
    every: Sequence[Wired],
    *,
    resync: float,
    lease_ttl: float,
    log: Log,
    notifications: Notifications | None,
    state_ok: bool,
) -> dict[str, Loop]:
    """One loop per engine, each with its metrics (the `host` label) and, with several engines, `host=` in its logs."""
    out: dict[str, Loop] = {}
    for wired in every:
        metrics = Metrics()
        metrics.state_ok = int(state_ok)
        out[wired.engine.name] = Loop(
            wired.reconciler,
            resync=resync,
            metrics=metrics,
            log=functools.partial(log, host=wired.engine.name) if len(every) > 1 else log,
            lease=wired.lease,
            lease_ttl=lease_ttl,
            backups=wired.reconciler,
            notifications=notifications,
            name=wired.engine.name,
        )
    return out


def exposition(loops: dict[str, Loop]) -> Callable[[], str]:
    """/metrics: every loop's metrics, labelled with its engine."""
    return prometheus.Exposition({name: loop.metrics for name, loop in loops.items()}).render


def pull(directory: Path, remote: str, branch: str, log: Log) -> None:
    """One `git pull` before the first pass; a failure is logged, and the controller converges what it has."""
    try:
        git.pull(directory, remote, branch)
    except git.GitError as e:
        log(level="error", msg="git pull failed", error=str(e))


def sources(
    directory: Path,
    source: SourceMode,
    git_pull: tuple[str, str] | None,
    pull_interval: float,
    every: Sequence[Wired],
    loops: dict[str, Loop],
    log: Log,
    stop: threading.Event,
) -> list[threading.Thread]:
    """The threads that feed the loops: each engine's Docker events, the files and git, and the periodic git pull."""
    if source == "worktree":

        def on_files(reason: str) -> None:
            for loop in loops.values():
                loop.new_desired_state(reason)

    else:

        def on_files(reason: str) -> None:
            log(level="warning", msg="uncommitted edits are ignored (--source commit)", directory=str(directory))

    def on_commit(rev: str) -> None:
        for loop in loops.values():
            loop.new_desired_state(f"commit {rev[:12]}")

    threads = [
        threading.Thread(
            target=follow_events,
            name=f"dbstate-events-{w.engine.name}",
            daemon=True,
            args=(w.runtime.host, loops[w.engine.name].engine_event, _on_connection(loops[w.engine.name]), stop),
            kwargs={"tls": w.engine.tls},
        )
        for w in every
    ]
    threads.append(
        threading.Thread(
            target=watch.watch, name="dbstate-watch", daemon=True, args=(directory, on_files, on_commit, stop)
        )
    )
    if git_pull:
        remote, branch = git_pull
        threads.append(
            threading.Thread(
                target=watch.pull_periodically,
                name="dbstate-pull",
                daemon=True,
                args=(
                    directory,
                    remote,
                    branch,
                    pull_interval,
                    stop,
                    lambda e: log(level="error", msg="git pull failed", error=e),
                    lambda _rev: None,
                ),
            )
        )
    return threads


def _on_connection(loop: Loop) -> Callable[[bool], None]:
    def on_connection(up: bool) -> None:
        loop.metrics.engine_up = int(up)
        if up:
            loop.trigger(reason="engine connected")

    return on_connection
