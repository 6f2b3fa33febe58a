"""`dbstate run`, the controller process: composes the sources of work (files, git, Docker events, git pull), the
engine's loop (with its lease and probe timers), the HTTP endpoints and the logs, and stops gracefully on SIGTERM."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from controller import http, logs
from controller.adapters import git, notify, prometheus, store, watch
from controller.adapters.docker import follow_events
from controller.commands.serve import Site
from controller.core import errors
from controller.engine.loop import Loop
from controller.engine.metrics import Metrics
from controller.engine.notifying import Notifications
from controller.engine.options import PassOptions, SourceMode, Target
from controller.engine.reconciler import Reconciler
from controller.wiring import reconciler


@dataclass(frozen=True)
class RunOptions:
    target: Target
    passes: PassOptions
    source: SourceMode = "worktree"
    git_pull: tuple[str, str] | None = None  # (remote, branch)
    pull_interval: float = 60.0
    resync: float = 60.0
    listen: tuple[str, int] | None = ("127.0.0.1", 9464)
    log_format: str = "text"
    retry_budget: float = 10.0
    lease_ttl: float = 30.0
    notify: tuple[str, ...] = ()  # Apprise URLs (resolved: they may hold tokens, never printed)


def run(opts: RunOptions) -> int:
    directory: Path = opts.target.directory
    if not directory.is_dir():
        raise errors.DesiredStateError(f"desired-state directory {directory} does not exist (use --dir)")
    reconcilers: list[Reconciler] = []  # the one of this process, once built: its secrets scrub every log line
    urls = set(opts.notify)  # a notification URL may hold a token: scrubbed from every line like a secret
    log = logs.logger(opts.log_format, lambda: (set(reconcilers[0].secrets) if reconcilers else set()) | urls)
    notifications = (
        Notifications(
            notify.notifiers(opts.notify),
            log,
            known_secrets=lambda: set(reconcilers[0].secrets) if reconcilers else set(),
        )
        if opts.notify
        else None
    )
    stop = threading.Event()
    metrics = Metrics()
    unroute = logs.route_libraries(log)  # docker-py's and urllib3's warnings: same format, same scrubbing

    def state_unusable(message: str) -> None:
        metrics.state_ok = 0
        log(level="error", msg="state database unusable: converging without it", error=message)

    with reconciler(
        opts.target,
        opts.passes,
        require_store=True,
        state_unusable=state_unusable,
        retry_budget=opts.retry_budget,
        progress=lambda m: log(level="info", msg=m),
        source=opts.source,
        lease_ttl=opts.lease_ttl,
    ) as wired:
        reconcilers.append(wired.reconciler)
        loop = Loop(
            wired.reconciler,
            resync=opts.resync,
            metrics=metrics,
            log=log,
            lease=wired.lease,
            lease_ttl=opts.lease_ttl,
            backups=wired.reconciler,
            notifications=notifications,
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log(level="info", msg="stopping", signal=signal.Signals(signum).name)
            stop.set()
            loop.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        threads = _sources(opts, loop, wired.runtime.host, metrics, log, stop)
        server = None
        if opts.listen is not None:
            site = Site(opts.target.state or store.default_path(), wired.backups.root)
            server = http.serve(opts.listen, prometheus.Exposition(metrics).render, loop.is_ready, site.handle)
            log(level="info", msg="listening", address=http.display(opts.listen))
        if opts.git_pull:
            try:
                git.pull(directory, *opts.git_pull)
            except git.GitError as e:
                log(level="error", msg="git pull failed", error=str(e))
        for t in threads:
            t.start()
        log(
            level="info",
            msg="started",
            directory=str(directory),
            source=opts.source,
            resync=opts.resync,
            engine=wired.runtime.host,
        )
        try:
            loop.run()
        finally:
            stop.set()
            loop.stop()
            if server is not None:
                server.shutdown()
            log(level="info", msg="stopped")
            if notifications is not None:
                notifications.stop()
            unroute()
    return 0


def _sources(
    opts: RunOptions, loop: Loop, host: str, metrics: Metrics, log: logs.Log, stop: threading.Event
) -> list[threading.Thread]:
    """The threads that feed the loop: Docker events, the files and git, and the periodic git pull."""

    def on_connection(up: bool) -> None:
        metrics.engine_up = int(up)
        if up:
            loop.trigger(reason="engine connected")

    directory = opts.target.directory
    if opts.source == "worktree":
        on_files = loop.new_desired_state
    else:

        def on_files(reason: str) -> None:
            log(level="warning", msg="uncommitted edits are ignored (--source commit)", directory=str(directory))

    threads = [
        threading.Thread(
            target=follow_events,
            name="dbstate-events",
            daemon=True,
            args=(host, loop.engine_event, on_connection, stop),
        ),
        threading.Thread(
            target=watch.watch,
            name="dbstate-watch",
            daemon=True,
            args=(directory, on_files, lambda rev: loop.new_desired_state(f"commit {rev[:12]}"), stop),
        ),
    ]
    if opts.git_pull:
        remote, branch = opts.git_pull
        threads.append(
            threading.Thread(
                target=watch.pull_periodically,
                name="dbstate-pull",
                daemon=True,
                args=(
                    directory,
                    remote,
                    branch,
                    opts.pull_interval,
                    stop,
                    lambda e: log(level="error", msg="git pull failed", error=e),
                    lambda _rev: None,
                ),
            )
        )
    return threads
