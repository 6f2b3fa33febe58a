"""The reconcile loop: sources of work -> the queue -> one level-triggered pass at a time; resync; graceful stop.

Sources (file changes, new commits, Docker events) call `trigger`; a new desired state calls `new_desired_state`,
which supersedes every pending retry. Each pass re-reads both sides and applies every change that is not waiting for
its retry; a failed change puts its resource on exponential backoff, and the queue brings it back when it is due. A
pass that cannot reach the engine is retried with the same backoff while the loop stays up and reports not ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from controller.core import errors
from controller.engine.metrics import Metrics
from controller.engine.ports import PassReport, Reconciler
from controller.engine.queue import WHOLE, WorkQueue

Log = Callable[..., None]


class Loop:
    def __init__(
        self,
        reconciler: Reconciler,
        *,
        resync: float = 60.0,
        queue: WorkQueue | None = None,
        metrics: Metrics | None = None,
        log: Log | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.reconciler = reconciler
        self.resync = resync
        self.queue = queue or WorkQueue()
        self.metrics = metrics or Metrics()
        self.log: Log = log or (lambda **_fields: None)
        self.may_act = may_act
        self.stopping = threading.Event()
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()
        self.last_report: PassReport | None = None
        self.ready = False
        self._logged_problems: tuple[str, ...] = ()

    # -- sources --------------------------------------------------------------------------------------------------

    def trigger(self, key: str = WHOLE, reason: str = "event") -> None:
        with self._lock:
            self._reasons.setdefault(key, reason)
        self.queue.add(key)

    def new_desired_state(self, reason: str) -> None:
        """A new revision or edited files: retries of the old desired state are superseded."""
        self.queue.supersede()
        self.trigger(WHOLE, reason)

    def stop(self) -> None:
        self.stopping.set()
        self.queue.close()

    # -- the loop ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
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
                self.queue.add(WHOLE, delay=1.0)
                continue
            self.one_pass(trigger)
            last_pass = time.monotonic()

    def one_pass(self, trigger: str) -> PassReport | None:
        try:
            report = self.reconciler.run_pass(
                trigger, deferred=lambda key: self.queue.waiting(key) is not None, should_stop=self.stopping.is_set
            )
        except errors.EngineError as e:
            delay = self.queue.failed(WHOLE, str(e))
            self.ready = False
            self.metrics.engine_up = 0
            self.metrics.ready = 0
            self.metrics.failed_pass()
            self.log(level="error", msg="pass failed", trigger=trigger, error=str(e), retry_in=round(delay, 1))
            return None
        except errors.DbstateError as e:  # the desired state cannot be read at all (no directory, git failed)
            delay = self.queue.failed(WHOLE, str(e))
            self.metrics.failed_pass()
            self.log(level="error", msg="pass failed", trigger=trigger, error=str(e), retry_in=round(delay, 1))
            return None
        self.queue.succeeded(WHOLE)
        changes: list[tuple[str, str]] = []
        failed: list[dict[str, Any]] = []
        for o in report.outcomes:
            key = o.change.key
            changes.append((o.change.action.value, o.status))
            if o.status == "ok":
                self.queue.succeeded(key)
            elif o.status == "failed":
                delay = self.queue.failed(key, o.message)
                failed.append({"key": key, "error": o.message, "retry_in": round(delay, 1)})
        result = "ok" if not failed else "failed"
        drift = {k: 1 for k in report.drifted} | {k: 0 for k in report.in_sync_keys}
        self.metrics.observe_pass(
            result, report.duration, changes, report.findings, drift, report.health, report.probes
        )
        self.metrics.engine_up = 1
        self.ready = True
        self.metrics.ready = 1
        self.last_report = report
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
        problems = tuple(str(p) for p in report.problems)
        if problems != self._logged_problems:  # once per change, not once per pass
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
        return report
