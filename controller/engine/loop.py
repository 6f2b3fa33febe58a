"""The reconcile loop: sources of work -> the queue -> one level-triggered pass at a time; resync; the lease and probe
timers; graceful stop; and it survives any pass.

Sources (file changes, new commits, Docker events) call `trigger`; a new desired state calls `new_desired_state`,
which supersedes every pending retry. Each pass re-reads both sides and applies every change that is not waiting for
its retry; a failed change puts its resource on exponential backoff, and the queue brings it back when it is due. A
pass that fails as a whole (the engine is gone, the desired state cannot be read, or a bug) is logged, counted and
retried with the same backoff while the loop stays up and reports not ready. Only `stop` ends `run`.

Timers: with a lease, the loop acts only while it holds it (renewed every TTL/4; a second controller waits;
every mutating call is fenced by the lease, see adapters/lease.py); with
probes, a pass is asked for when the probes are due and no other pass has probed within the interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from controller.core import errors
from controller.engine.metrics import Metrics
from controller.engine.notifying import Notifications
from controller.engine.ports import Lease
from controller.engine.queue import WHOLE, Backoff, WorkQueue
from controller.engine.reconciler import PassReport, Request

Log = Callable[..., None]


class BacksUp(Protocol):
    """Scheduled backups (`engine.reconciler.Reconciler`): which are due, and taking one."""

    def backups_due(self) -> list[Any]: ...

    def back_up(self, server: Any) -> Any: ...

    def verifications_due(self) -> list[tuple[Any, Any]]: ...

    def verify_backup(self, inst: Any, manifest: Any) -> Any: ...

    def backup_facts(self) -> dict[str, tuple[Any, float | None]]: ...


BACKUP_CHECK = 15.0  # seconds between looks at which scheduled backups are due (a schedule is 1m or more)


class Reconciles(Protocol):
    """What the loop needs of a reconciler (`engine.reconciler.Reconciler`, or a fake in the unit tests)."""

    def reconcile(self, request: Request) -> PassReport: ...

    def record_status(self, report: PassReport, backoffs: Mapping[str, Backoff]) -> None: ...

    def probe_due_in(self) -> float | None: ...

    def key_of(self, container: str) -> str | None: ...

    def record_failure(self, trigger: str, started: float, error: str) -> None: ...


DEBOUNCE = 0.1  # seconds: the events of one change (kill, die, stop, disconnect...) make one pass
CRASH_LOOP_DIES = 3  # a container that died this often...
CRASH_LOOP_WINDOW = 60.0  # ...within this many seconds is crash-looping: its restarts back off


class Loop:
    def __init__(
        self,
        reconciler: Reconciles,
        *,
        resync: float = 60.0,
        queue: WorkQueue | None = None,
        metrics: Metrics | None = None,
        log: Log | None = None,
        lease: Lease | None = None,
        lease_ttl: float = 30.0,
        backups: BacksUp | None = None,
        notifications: Notifications | None = None,
        name: str = "default",
    ) -> None:
        """`name`: the engine's (its Host's), in what the loop says (a lost lease is that engine's)."""
        self.name = name
        self.reconciler = reconciler
        self.backups = backups
        self.notifications = notifications
        self.resync = resync
        self.queue = queue or WorkQueue()
        self.metrics = metrics or Metrics()
        self.log: Log = log or (lambda **_fields: None)
        self.lease = lease
        self.lease_ttl = lease_ttl
        self.leading = threading.Event()
        if lease is None:
            self.leading.set()
        self.stopping = threading.Event()
        self._lease_error: str | None = None  # the engine did not answer the lease's last renewal
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()
        self.last_report: PassReport | None = None
        self.ready = False
        self._logged_problems: tuple[str, ...] = ()
        self._dies: dict[str, list[float]] = {}  # container -> when it died, within the crash-loop window
        self._crash_looping: set[str] = set()  # resource keys whose restarts back off
        self._down_at: dict[str, float] = {}  # crash-looping key -> when a pass last found it not running

    # -- sources --------------------------------------------------------------------------------------------------

    def trigger(self, key: str = WHOLE, reason: str = "event") -> None:
        with self._lock:
            self._reasons.setdefault(key, reason)
        self.queue.add(key)

    def engine_event(self, kind: str, action: str, name: str, container: str = "") -> None:
        """A Docker event that can mean drift: one pass for a burst (debounced); none for the events of a
        crash-looping container (its dies, its network attachments coming and going), whose resource is put on the
        queue's backoff instead (restarted at 1 s, 2 s, 4 s ... 5 min, not at every die). It stays crash-looping
        until it has run for CRASH_LOOP_WINDOW without dying."""
        reason = f"docker {kind} {action} {name}".strip()
        if kind == "network" and container:
            key = self.reconciler.key_of(container)
            if key is not None and key in self._crash_looping:
                return
        if kind == "container" and action == "die" and name:
            now = time.monotonic()
            recent = [t for t in self._dies.get(name, []) if now - t < CRASH_LOOP_WINDOW] + [now]
            self._dies[name] = recent
            key = self.reconciler.key_of(name)
            if key is not None and (key in self._crash_looping or len(recent) >= CRASH_LOOP_DIES):
                if key not in self._crash_looping:
                    self._crash_looping.add(key)
                    self.log(level="warning", msg="crash-looping: restarts back off", container=name, resource=key)
                if self.queue.waiting(key) is None:  # not already waiting: the next retry comes later than the last
                    error = f"crash-looping: {name} died {len(recent)} times within {CRASH_LOOP_WINDOW:g} s"
                    self.queue.failed(key, error)
                return
        with self._lock:
            self._reasons.setdefault(WHOLE, reason)
        self.queue.add(WHOLE, delay=DEBOUNCE)

    def new_desired_state(self, reason: str) -> None:
        """A new revision or edited files: retries of the old desired state are superseded."""
        self.queue.supersede()
        self.trigger(WHOLE, reason)

    def stop(self) -> None:
        self.stopping.set()
        self.queue.close()

    def is_ready(self) -> bool:
        """/readyz: the engine answered and the last pass completed, and this controller may act."""
        return self.ready and self.may_act()

    # -- the loop ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until `stop`: the lease and probe timers in the background, passes in this thread."""
        timers = []
        if self.lease is not None:
            timers.append(threading.Thread(target=self._keep_lease, name="dbstate-lease", daemon=True))
        if self.reconciler.probe_due_in() is not None:
            timers.append(threading.Thread(target=self._probe_timer, name="dbstate-probe", daemon=True))
        if self.backups is not None:
            timers.append(threading.Thread(target=self._backup_timer, name="dbstate-backup", daemon=True))
        for t in timers:
            t.start()
        self.trigger(WHOLE, "start")
        last_pass = 0.0
        while not self.stopping.is_set():
            timeout = max(0.0, self.resync - (time.monotonic() - last_pass))
            keys = self.queue.get(timeout=timeout)
            if self.stopping.is_set():
                break
            with self._lock:
                reasons = [self._reasons.pop(k, "retry") for k in keys]
            trigger = ",".join(sorted(set(reasons))) if keys else "resync"
            if not self.may_act():
                self.ready = False
                self.metrics.ready = 0
                error = self._lease_error
                if error is not None:  # the engine is unreachable: a pass that cannot run, reported and backed off
                    self._pass_failed(trigger, time.time(), f"cannot hold the engine lease: {error}")
                    last_pass = time.monotonic()  # it counts as one: the resync is not due again at once
                else:
                    self.queue.add(WHOLE, delay=1.0)
                continue
            self.one_pass(trigger)
            last_pass = time.monotonic()
        if self.lease is not None:
            try:
                self.lease.release()
            except errors.DbstateError as e:
                self.log(level="warning", msg="cannot release the lease", error=str(e))

    def one_pass(self, trigger: str) -> PassReport | None:
        """One pass; whatever goes wrong in it is logged, counted and retried, never raised."""
        started = time.time()
        try:
            report = self.reconciler.reconcile(
                Request(
                    trigger,
                    deferred=lambda key: self.queue.waiting(key) is not None,
                    should_stop=self.stopping.is_set,
                )
            )
            return self._settle(trigger, report)
        except errors.EngineError as e:
            self.metrics.engine_up = 0
            self._pass_failed(trigger, started, str(e))
        except errors.DbstateError as e:  # the desired state cannot be read at all (no directory, git failed)
            self._pass_failed(trigger, started, str(e))
        except Exception as e:  # a bug: the controller stays up, says what it was, and tries again later
            self._pass_failed(trigger, started, f"unexpected {type(e).__name__}: {e}")
        return None

    def _still_crash_looping(self, key: str) -> bool:
        """It died, or a pass found it not running, within the window: only a whole window up ends it."""
        last = self._down_at.get(key, 0.0)
        for name, times in self._dies.items():
            if times and self.reconciler.key_of(name) == key:
                last = max(last, times[-1])
        return time.monotonic() - last < CRASH_LOOP_WINDOW

    def _pass_failed(self, trigger: str, started: float, error: str) -> None:
        delay = self.queue.failed(WHOLE, error)
        attempts = self.queue.backoffs()[WHOLE].attempts
        if attempts & (attempts - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a long outage is a few rows, not a flood
            self.reconciler.record_failure(trigger, started, error)
        self.ready = False
        self.metrics.ready = 0
        self.metrics.failed_pass()
        self.log(level="error", msg="pass failed", trigger=trigger, error=error, retry_in=round(delay, 1))

    def _settle(self, trigger: str, report: PassReport) -> PassReport:
        """The queue, metrics, status and logs after a pass that ran."""
        self.queue.succeeded(WHOLE)
        for key in self._crash_looping & report.drifted:  # not running (or being restarted) now
            self._down_at[key] = time.monotonic()
        for key in set(self.queue.backoffs()) - report.drifted - self._crash_looping - {WHOLE}:
            self.queue.succeeded(key)  # nothing to retry any more (repaired, acknowledged, or a finding now)
        changes: list[tuple[str, str]] = []
        failed: list[dict[str, Any]] = []
        for o in report.outcomes:
            key = o.change.key
            changes.append((o.change.action.value, o.status))
            if o.status == "ok":
                if key in self._crash_looping and self._still_crash_looping(key):
                    continue  # restarted, but it keeps dying: its backoff keeps growing
                self._crash_looping.discard(key)
                self.queue.succeeded(key)
            elif o.status == "failed":
                delay = self.queue.failed(key, o.message)
                failed.append({"key": key, "error": o.message, "retry_in": round(delay, 1)})
        for key in sorted(self._crash_looping):
            if not self._still_crash_looping(key):  # up for a whole window: over
                self._crash_looping.discard(key)
                self._down_at.pop(key, None)
                self.queue.succeeded(key)
                self.log(level="info", msg="no longer crash-looping", resource=key)
        result = "ok" if not failed else "failed"
        drift = {k: 1 for k in report.drifted} | {k: 0 for k in report.in_sync_keys}
        self.metrics.observe_pass(
            result, report.duration, changes, report.findings, drift, report.health, report.probes
        )
        self.metrics.engine_up = 1
        self.ready = True
        self.metrics.ready = 1
        self.last_report = report
        if self.notifications is not None:
            self.notifications.after_pass(report)  # queued: sent by its own thread, never waited for here
        self.reconciler.record_status(report, self.queue.backoffs())
        self.log(
            level="info" if not failed else "warning",
            msg="pass",
            reconcile_id=report.reconcile_id,
            trigger=trigger,
            revision=report.revision,
            dirty=report.dirty,
            duration_ms=round(report.duration * 1000),
            changes=len(report.outcomes),
            failed=len(failed),
            deferred=len(report.pending),
            findings=sum(report.findings.values()),
            errors=report.errors,
        )
        for f in failed:
            self.log(level="warning", msg="change failed", reconcile_id=report.reconcile_id, **f)
        self._log_problems(report)
        return report

    def _log_problems(self, report: PassReport) -> None:
        problems = tuple(str(p) for p in report.problems)
        if problems == self._logged_problems:  # once per change, not once per pass
            return
        self._logged_problems = problems
        for p in report.problems:
            self.log(
                level="error",
                msg="desired state error: held back, nothing torn down",
                reconcile_id=report.reconcile_id,
                revision=report.revision,
                file=p.file,
                line=p.line,
                column=p.column,
                resource=f"{p.kind}/{p.name}" if p.kind else None,
                field=p.field,
                error=p.message,
            )

    # -- timers ---------------------------------------------------------------------------------------------------

    def _keep_lease(self) -> None:
        """Acquire and renew the lease every TTL/4; while another controller holds it, do not act."""
        assert self.lease is not None
        ttl = self.lease_ttl
        waiting_logged = False
        while not self.stopping.is_set():
            try:
                other = self.lease.hold()
            except errors.EngineError as e:
                self._not_leading()
                self.metrics.engine_up = 0
                if self._lease_error is None:  # once per outage: the failing passes say the rest
                    self.log(level="warning", msg="cannot renew the lease", error=str(e))
                    self.queue.add(WHOLE)  # the next pass reports it now, not at the next resync
                self._lease_error = str(e)
                self.stopping.wait(2.0)
                continue
            self._lease_error = None
            if other is None:
                if not self.leading.is_set():
                    self.log(level="info", msg="holding the engine lease", holder=self.lease.holder, ttl=ttl)
                    waiting_logged = False
                    self.trigger(reason="lease acquired")
                self.leading.set()
                self.metrics.leader = 1
                self.stopping.wait(ttl / 4)
                continue
            self._not_leading()
            if not waiting_logged:
                until = time.strftime("%H:%M:%S", time.gmtime(other.expires))
                self.log(
                    level="error",
                    msg="another dbstate run holds the engine lease: not acting until it stops or its lease expires",
                    holder=other.holder,
                    expires=f"{until}Z",
                )
                waiting_logged = True
            self.stopping.wait(min(2.0, ttl / 4))

    def may_act(self) -> bool:
        """Holding the lease, by its own clock too (a controller that was paused must not act on a stale flag)."""
        return self.leading.is_set() and (self.lease is None or self.lease.held())

    def _not_leading(self) -> None:
        if self.leading.is_set() and self.lease is not None:
            self.metrics.lease_lost += 1  # it held the lease and no longer does
            if self.notifications is not None:
                self.notifications.event(
                    f"lease/{self.name}",
                    f"lost {self.metrics.lease_lost}",
                    f"lease lost on {self.name}: this controller stopped acting there",
                )
        self.leading.clear()
        self.metrics.leader = 0

    def _backup_timer(self) -> None:
        """Scheduled backups (policy.backup.schedule) and their verification (policy.backup.verify), one at a time,
        only by the lease holder; a failure is logged and counted and tried again at the next look. The metrics
        follow the backup directory's manifests (a `dbstate backup` or `verify-backup` run by hand counts too)."""
        assert self.backups is not None
        known = False
        while not self.stopping.wait(BACKUP_CHECK if known else 1.0):
            known = self._backup_metrics()
            if not self.may_act():
                continue
            try:
                servers = self.backups.backups_due()
            except errors.DbstateError:
                continue
            for server in servers:
                if self.stopping.is_set() or not self.may_act():
                    break
                self._scheduled_backup(server)
            try:
                checks = self.backups.verifications_due()
            except errors.DbstateError:
                continue
            for inst, manifest in checks:
                if self.stopping.is_set() or not self.may_act():
                    break
                self._scheduled_verification(inst, manifest)

    def _backup_metrics(self) -> bool:
        assert self.backups is not None
        try:
            facts = self.backups.backup_facts()
        except errors.DbstateError:
            return False
        for name, (m, verified) in facts.items():
            self.metrics.backed_up(name, m.finished, m.size_bytes)
            if verified is not None:
                self.metrics.verified(name, verified)
        return self.last_report is not None  # before the first pass nothing is declared yet: look again soon

    def _scheduled_backup(self, server: Any) -> None:
        assert self.backups is not None
        try:
            m = self.backups.back_up(server)
        except errors.DbstateError as e:
            self.metrics.backup_failed(server.name)
            self._tell(f"backup/{server.name}", "failed", f"backup failed: {server.name}: {e}")
            self.log(level="warning", msg="scheduled backup failed", instance=server.name, error=str(e))
            return
        self.metrics.backed_up(server.name, m.finished, m.size_bytes)
        self._tell(f"backup/{server.name}", "ok", f"backup works again: {server.name}")
        self.log(level="info", msg="backed up", instance=server.name, backup=m.id, bytes=m.size_bytes)

    def _scheduled_verification(self, inst: Any, manifest: Any) -> None:
        assert self.backups is not None
        name = inst.metadata.name
        try:
            m = self.backups.verify_backup(inst, manifest)
        except errors.DbstateError as e:
            self.metrics.verify_failed(name)
            self._tell(f"verify/{name}", "failed", f"backup {manifest.id} of {name} does not restore: {e}")
            self.log(level="warning", msg="backup verification failed", instance=name, backup=manifest.id, error=str(e))
            return
        self.metrics.verified(name, m.verified)
        self._tell(f"verify/{name}", "ok", f"backups of {name} restore again")
        self.log(level="info", msg="backup verified", instance=name, backup=m.id)

    def _tell(self, key: str, outcome: str, text: str) -> None:
        """A notification of a failure, and of the first success after one (never of each success)."""
        if self.notifications is None:
            return
        if outcome == "failed" or self.notifications.tracker.said.get(key):
            self.notifications.event(key, outcome, text)

    def _probe_timer(self) -> None:
        """A pass probes when its probes are due, whatever triggered it; this timer only asks for a pass when no
        other pass has probed within the interval (an idle controller: resync and probes share passes)."""
        while True:
            due = self.reconciler.probe_due_in()
            if due is None or self.stopping.wait(max(0.5, due)):
                return
            due = self.reconciler.probe_due_in()
            if due is not None and due <= 0.5 and self.last_report is not None:  # the first pass probes anyway
                self.trigger(reason="probe")
