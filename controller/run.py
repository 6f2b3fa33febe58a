"""`dbstate run`, the controller process: composes the sources of work (files, git, each engine's Docker events, git
pull), one loop per engine (each with its lease, queue, backoff and timers, in a thread of its own), the desk that
performs the one-off commands handed to it (commands/oneoff.py), the HTTP endpoints and the logs, and stops
gracefully on SIGTERM (a job under way ends first; a second signal does not wait for it)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from controller import http, logs
from controller.commands import oneoff
from controller.core import errors
from controller.core import secrets as secret_values
from controller.core.options import PassOptions, SourceMode, Target
from controller.views.site import Site
from controller.wiring import engines, local, process
from controller.wiring.engines import Wired
from controller.wiring.process import Loop


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
    wired: list[Wired] = []  # one per engine, once built: their reconcilers' secrets scrub every log line
    urls = set(opts.notify)  # a notification URL may hold a token: scrubbed from every line like a secret

    def secrets() -> set[str]:
        return set().union(*(w.reconciler.secrets for w in wired))

    log = logs.logger(opts.log_format, lambda: secrets() | urls)
    notifications = process.notifications(opts.notify, log, secrets)
    stop = threading.Event()
    unroute = logs.route_libraries(log)  # docker-py's and urllib3's warnings: same format, same scrubbing
    unusable: list[str] = []

    def state_unusable(message: str) -> None:
        if not unusable:
            log(level="error", msg="state database unusable: converging without it", error=message)
        unusable.append(message)

    with engines.reconcilers(
        opts.target,
        opts.passes,
        require_store=True,
        state_unusable=state_unusable,
        retry_budget=opts.retry_budget,
        progress=lambda m: log(level="info", msg=m),
        source=opts.source,
        lease_ttl=opts.lease_ttl,
    ) as every:
        wired.extend(every)
        loops = process.loops(
            every,
            resync=opts.resync,
            lease_ttl=opts.lease_ttl,
            log=log,
            notifications=notifications,
            state_ok=not unusable,
        )
        desk = (
            None
            if unusable
            else _desk(opts, every, loops, log, lambda text: secret_values.scrub(text, secrets() | urls))
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log(level="info", msg="stopping", signal=signal.Signals(signum).name)
            if stop.is_set() or desk is None:  # the second signal: a job under way is not waited for
                for loop in loops.values():
                    loop.stop()
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        threads = process.sources(directory, opts.source, opts.git_pull, opts.pull_interval, every, loops, log, stop)
        if desk is not None:
            threads.append(threading.Thread(target=desk.run, name="dbstate-desk", daemon=True, args=(stop,)))
        server = None
        if opts.listen is not None:
            site = Site(local.state_path(opts.target.state), every[0].backups.root, http.advertised(opts.listen))
            server = http.serve(
                opts.listen,
                process.exposition(loops),
                lambda: all(lp.is_ready() for lp in loops.values()),
                site.handle,
            )
            log(level="info", msg="listening", address=http.display(opts.listen))
        if opts.git_pull:
            process.pull(directory, *opts.git_pull, log)
        for t in threads:
            t.start()
        log(
            level="info",
            msg="started",
            directory=str(directory),
            source=opts.source,
            resync=opts.resync,
            engine=", ".join(
                f"{w.engine.name}={w.runtime.shown}" if len(every) > 1 else w.runtime.shown for w in every
            ),
        )
        # one thread per engine: a pass that waits on a slow or dead engine holds up no other engine's repairs
        running = [
            threading.Thread(target=loop.run, name=f"dbstate-loop-{name}", daemon=True) for name, loop in loops.items()
        ]
        for t in running:
            t.start()
        try:
            while not stop.wait(0.5) and any(t.is_alive() for t in running):
                pass
        finally:
            stop.set()
            if desk is not None:
                desk.stop()  # a job under way ends under the lease it started with
                desk.db.close()
            for loop in loops.values():
                loop.stop()
            for t in running:
                t.join()
            if server is not None:
                server.shutdown()
            log(level="info", msg="stopped")
            if notifications is not None:
                notifications.stop()
            unroute()
    return 0


def _desk(
    opts: RunOptions, every: list[Wired], loops: dict[str, Loop], log: logs.Log, scrub: Callable[[str], str]
) -> oneoff.Desk | None:
    """The one-off commands handed to this controller, performed with its desired state, scope and leases."""
    if not all(w.lease is not None for w in every):
        return None
    lanes = {w.engine.name: oneoff.Lane(w, loops[w.engine.name].may_act, _asker(loops[w.engine.name])) for w in every}
    db = local.state(opts.target.state)
    return oneoff.Desk(opts.target, opts.passes.scope, db, lanes, log, scrub)


def _asker(loop: Loop) -> Callable[[str], None]:
    def ask(why: str) -> None:
        loop.trigger(reason=why)

    return ask
