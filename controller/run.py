"""`dbstate run`: the controller. Wires the sources of work (files, git, Docker events, resync, git pull), the
one-writer lease, the HTTP endpoints and the logs around the engine's loop, and stops gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from controller import http, logs
from controller.adapters import git, lease, watch
from controller.adapters.docker import follow_events
from controller.core import errors
from controller.engine.loop import Loop
from controller.engine.metrics import Metrics
from controller.wiring import ProbeOptions, Reconciler, Session


def run(args: argparse.Namespace, probe: ProbeOptions | None = None) -> int:
    """`probe`: probe every instance every --probe-interval seconds (None: never)."""
    reconciler: Reconciler | None = None

    def known_secrets() -> set[str]:  # every secret of the desired state last loaded, for the log scrubber
        return set(reconciler.last.secrets) if reconciler is not None and reconciler.last is not None else set()

    log = logs.logger(args.log_format, known_secrets)
    stop = threading.Event()
    metrics = Metrics()
    directory: Path = args.dir
    if not directory.is_dir():
        raise errors.DesiredStateError(f"desired-state directory {directory} does not exist (use --dir)")

    session = Session(
        args.docker_host,
        args.state,
        require_store=True,
        retry_budget=args.retry_budget,
        source=args.source,
        progress=lambda m: log(level="info", msg=m),
    )
    reconciler = Reconciler(session, directory, args.env_file, prune=args.prune, parallel=args.parallel, probe=probe)
    holder = lease.EngineLease(session.runtime, ttl=args.lease_ttl)
    leading = threading.Event()

    def may_act() -> bool:
        return leading.is_set()

    loop = Loop(reconciler, resync=args.resync, metrics=metrics, log=log, may_act=may_act)

    def on_connection(up: bool) -> None:
        metrics.engine_up = int(up)
        if up:
            loop.trigger(reason="engine connected")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log(level="info", msg="stopping", signal=signal.Signals(signum).name)
        stop.set()
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def keep_lease() -> None:
        waiting_logged = False
        while not stop.is_set():
            try:
                other = holder.hold()
            except errors.EngineError as e:
                other = None
                leading.clear()
                metrics.leader = 0
                log(level="warning", msg="cannot renew the lease", error=str(e))
                stop.wait(2.0)
                continue
            if other is None:
                if not leading.is_set():
                    log(level="info", msg="holding the engine lease", holder=holder.holder, ttl=args.lease_ttl)
                    waiting_logged = False
                    loop.trigger(reason="lease acquired")
                leading.set()
                metrics.leader = 1
                stop.wait(args.lease_ttl / 3)
            else:
                leading.clear()
                metrics.leader = 0
                if not waiting_logged:
                    until = time.strftime("%H:%M:%S", time.gmtime(other.expires))
                    log(
                        level="error",
                        msg="another dbstate run holds the engine lease: not acting until it stops "
                        "or its lease expires",
                        holder=other.holder,
                        expires=f"{until}Z",
                    )
                    waiting_logged = True
                stop.wait(min(2.0, args.lease_ttl / 3))

    threads = [
        threading.Thread(target=keep_lease, name="dbstate-lease", daemon=True),
        threading.Thread(
            target=follow_events,
            name="dbstate-events",
            daemon=True,
            args=(
                session.runtime.host,
                lambda reason: loop.trigger(reason=reason),
                on_connection,
                stop,
            ),
        ),
    ]
    if probe is not None:

        def probe_periodically() -> None:
            # a pass probes when its probes are due, whatever triggered it; this timer only asks for a pass when no
            # other pass has probed within the interval (an idle controller: resync and probes share passes)
            interval = args.probe_interval
            while True:
                last = reconciler.last_probe if reconciler is not None else None
                wait = interval if last is None else max(0.5, last + interval - time.monotonic())
                if stop.wait(wait):
                    return
                last = reconciler.last_probe if reconciler is not None else None
                if last is None or time.monotonic() - last >= interval - 0.5:
                    loop.trigger(reason="probe")

        threads.append(threading.Thread(target=probe_periodically, name="dbstate-probe", daemon=True))
    if args.source == "worktree":
        on_files = loop.new_desired_state
    else:

        def on_files(reason: str) -> None:
            log(level="warning", msg="uncommitted edits are ignored (--source commit)", directory=str(directory))

    threads.append(
        threading.Thread(
            target=watch.watch,
            name="dbstate-watch",
            daemon=True,
            args=(directory, on_files, lambda rev: loop.new_desired_state(f"commit {rev[:12]}"), stop),
        )
    )
    if args.git_pull:
        remote, branch = args.git_pull
        threads.append(
            threading.Thread(
                target=watch.pull_periodically,
                name="dbstate-pull",
                daemon=True,
                args=(
                    directory,
                    remote,
                    branch,
                    args.pull_interval,
                    stop,
                    lambda e: log(level="error", msg="git pull failed", error=e),
                    lambda _rev: None,
                ),
            )
        )
    server = None
    if args.listen:
        server = http.serve(args.listen, metrics.render, lambda: loop.ready and leading.is_set())
        log(level="info", msg="listening", address=args.listen)
    if args.git_pull:
        try:
            git.pull(directory, *args.git_pull)
        except git.GitError as e:
            log(level="error", msg="git pull failed", error=str(e))
    for t in threads:
        t.start()
    log(
        level="info",
        msg="started",
        directory=str(directory),
        source=args.source,
        resync=args.resync,
        engine=session.runtime.host,
    )

    try:
        loop.run()
    finally:
        stop.set()
        loop.stop()
        if server is not None:
            server.shutdown()
        with contextlib.suppress(errors.DbstateError):
            holder.release()
        session.runtime.close()
        if session.store is not None:
            session.store.close()
        log(level="info", msg="stopped")
    return 0
