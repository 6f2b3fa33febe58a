"""The one-off commands that change an instance outside a pass (restore, migrate-volume, rollback): each holds the
engine lease itself, or, while a `dbstate run` holds it, hands its work to that controller, which performs it with
the instance held out of its passes and goes on reconciling the others. Operators never stop the controller for it.

The hand-over goes through the state database (adapters/store.py: controllers, jobs). A running controller records
which lease holders it is while it runs; a command that finds the lease held (and renewed) by such a controller queues
a job
(its options: names and ids, never a secret) and prints the job's progress until it ends. The controller's `Desk`
claims it, performs it under its own lease (which fences every change of the job, as it fences its passes), in the
controller's scope and desired state, and writes the result back. A job nobody claims within `CLAIM_WAIT` is
withdrawn: nothing was done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from controller.commands import options as common
from controller.core import errors
from controller.core.options import PassOptions, Target

if TYPE_CHECKING:
    from controller.core.scope import Scope
    from controller.wiring.engines import Wired
    from controller.wiring.local import Store

Progress = Callable[[str], None]
POLL = 0.5  # how often the controller looks for a job, and a waiting command for its progress
CLAIM_WAIT = 20.0  # a job no controller claims within this long is withdrawn
CONTEXT = ("target", "lease_ttl", "yes", "scope")  # options the controller sets itself: its own, never the command's


@dataclass(frozen=True)
class OneOff:
    """A command that may be handed over: its options' type, how it reads the plan, and its work under the lease.
    Its options have `target`, `name` (the instance), `yes` and `lease_ttl`; the others travel as JSON."""

    command: str
    options: type[Any]
    passes: Callable[[Any], PassOptions]
    perform: Callable[[Any, Wired, TextIO, Progress], int]  # options, wired, out, progress -> exit code
    summary: Callable[[Any], str]  # what it will do, in one line (said, and asked about, before a hand-over)
    require_store: bool = False


def run(job: OneOff, opts: Any, out: TextIO, err: TextIO) -> int:
    """The command's `run`: under the engine lease, or handed to the `dbstate run` that holds it."""
    from controller.wiring import engines

    def progress(message: str) -> None:
        print(f"  .. {message}", file=err, flush=True)

    with engines.reconciler(
        opts.target,
        job.passes(opts),
        instance=opts.name,
        require_store=job.require_store,
        lease_ttl=opts.lease_ttl,
    ) as wired:
        assert wired.lease is not None
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(wired.lease.holding(progress))
            except errors.LeaseHeld as e:
                return _hand_over(job, opts, wired, e, out, err)
            return job.perform(opts, wired, out, progress)


def _hand_over(job: OneOff, opts: Any, wired: Wired, held: errors.LeaseHeld, out: TextIO, err: TextIO) -> int:
    from controller.commands.suspend import who
    from controller.views import oneoff as view
    from controller.wiring import local

    assert wired.lease is not None
    epochs = wired.lease.epochs()
    holder = epochs[-1].holder if epochs else ""
    path = local.state_path(opts.target.state)
    with local.state(path) as db:
        # the lease says the holder is alive (it renews it); the state database, that it takes jobs from here
        if not holder or db.controller_seen(holder) is None:
            raise errors.LeaseHeld(
                f"{held} (that controller takes no jobs through the state database {path}: it runs with another "
                "--state, on another host, or is an older dbstate)"
            )
        out.write(view.handed_over(job.summary(opts), holder))
        if not common.go_ahead(opts.yes, 1, out, "done"):
            return common.EXIT_ERROR
        args = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name not in CONTEXT}
        job_id = db.enqueue_job(wired.engine.name, job.command, opts.name, args, who())
        print(f"  .. queued as job {job_id}", file=err, flush=True)
        return _follow(db, job_id, out, err)


def _follow(db: Store, job_id: int, out: TextIO, err: TextIO) -> int:
    """Print the job's progress as the controller writes it, then its output; its exit code is the command's."""
    claim_by = time.monotonic() + CLAIM_WAIT
    shown = 0
    try:
        while True:
            found = db.job(job_id)
            assert found is not None
            lines = found["log"].splitlines()
            for line in lines[shown:]:
                print(f"  .. {line}", file=err, flush=True)
            shown = len(lines)
            if found["state"] in ("done", "failed"):
                for line in found["output"].splitlines(keepends=True):
                    (err if line.startswith(("error: ", "internal error: ")) else out).write(line)
                return int(found["exit_code"])
            if found["state"] == "cancelled":
                raise errors.DbstateError(f"job {job_id} was withdrawn before a controller took it: nothing was done")
            if found["state"] == "queued" and time.monotonic() > claim_by and db.cancel_job(job_id):
                raise errors.DbstateError(
                    f"the running controller did not take job {job_id} within {CLAIM_WAIT:g} s (it may be busy "
                    "with another job, or not holding the lease any more): nothing was done; try again"
                )
            time.sleep(POLL / 2)
    except KeyboardInterrupt:
        if db.cancel_job(job_id):
            print(f"job {job_id} withdrawn: nothing was done", file=err)
            return common.EXIT_ERROR
        print(f"job {job_id} goes on in the controller (it is not interrupted halfway)", file=err)
        raise


@dataclass
class Lane:
    """One engine of the controller: its reconciler and lease (`Wired`), and whether it may act now."""

    wired: Wired
    may_act: Callable[[], bool]
    trigger: Callable[[str], None]  # ask for a pass (after a job, to converge what it changed)


class Desk:
    """The controller's side: says which lease holders take jobs, claims the jobs queued for the engines whose lease
    it holds, and performs them one at a time in a thread of its own, each with its instance held out of the passes.
    Performed in the controller's own desired state, scope and lease; what a job prints is scrubbed of secrets."""

    def __init__(
        self,
        target: Target,
        scope: Scope,
        db: Store,
        lanes: Mapping[str, Lane],
        log: Callable[..., None],
        scrub: Callable[[str], str],
    ) -> None:
        self.target, self.scope, self.db, self.lanes = target, scope, db, lanes
        self.log, self.scrub = log, scrub
        self.worker: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: a job whenever one is queued and no other job runs."""
        registered = False
        while not stop.is_set():
            try:
                if not registered:
                    self._register()
                    registered = True
                if self.worker is None or not self.worker.is_alive():
                    hosts = [name for name, lane in self.lanes.items() if lane.may_act()]
                    job = self.db.claim_job(hosts, self._holder(hosts)) if hosts else None
                    if job is not None:
                        self.worker = threading.Thread(
                            target=self._perform, args=(job,), name=f"dbstate-job-{job['id']}", daemon=True
                        )
                        self.worker.start()
            except errors.DbstateError as e:  # the state database: reported, tried again
                self.log(level="warning", msg="cannot look for jobs", error=str(e))
            stop.wait(POLL)

    def stop(self) -> None:
        """On a clean stop: take no more jobs, let the one under way end (it is never cut halfway), say goodbye."""
        if self.worker is not None and self.worker.is_alive():
            self.log(level="info", msg="waiting for the job under way to end", job=self.worker.name)
            self.worker.join()
        for lane in self.lanes.values():
            if lane.wired.lease is not None:
                with contextlib.suppress(errors.DbstateError):
                    self.db.controller_gone(lane.wired.lease.holder)

    def _holder(self, hosts: list[str]) -> str:
        lease = self.lanes[hosts[0]].wired.lease
        return lease.holder if lease is not None else "dbstate run"

    def _register(self) -> None:
        """Say which lease holders take jobs (once: a stop removes it; the lease tells whether its holder lives)."""
        for name, lane in self.lanes.items():
            if lane.wired.lease is not None:
                self.db.controller_alive(lane.wired.lease.holder, [name])

    def _perform(self, job: dict[str, Any]) -> None:
        from controller import commands
        from controller.wiring import engines

        job_id, lane = int(job["id"]), self.lanes[job["host"]]
        spec: OneOff = commands.load(job["command"]).ONE_OFF
        what = f"job {job_id}: {job['command']} asked by {job['who']}"
        self.log(level="info", msg="job started", job=job_id, command=job["command"], instance=job["instance"])
        printed = io.StringIO()  # what the command would print: the job's output

        def progress(message: str) -> None:
            self.db.job_says(job_id, self.scrub(message))

        code = common.EXIT_ERROR
        try:
            context = {"target": self.target, "lease_ttl": 0.0, "yes": True, "scope": self.scope}
            values = {**job["args"], **context}
            opts = spec.options(**{f.name: values[f.name] for f in dataclasses.fields(spec.options)})
            key = f"DatabaseInstance/{job['instance']}"
            with (
                lane.wired.reconciler.holding_out(key, what),
                engines.reconciler(
                    self.target,
                    spec.passes(opts),
                    host=job["host"],
                    require_store=spec.require_store,
                    progress=progress,
                    borrow=lane.wired.lease,
                ) as wired,
            ):
                code = spec.perform(opts, wired, printed, progress)
        except errors.DbstateError as e:
            printed.write(f"error: {e}\n")
        except Exception as e:  # a bug: the controller stays up, and the command hears what it was
            printed.write(f"internal error: {type(e).__name__}: {e}\n")
        finally:
            output = self.scrub(printed.getvalue())
            with contextlib.suppress(errors.DbstateError):
                self.db.finish_job(job_id, code, output)
            self.log(level="info", msg="job ended", job=job_id, command=job["command"], exit_code=code)
            lane.trigger(f"job {job_id} ended")
