"""Notifications: what a human should hear of the passes (a change failed and its recovery, drift repaired, a finding
and its resolution, an instance down and up, a lost lease, a failed backup), each said once per state (Argo CD's
`oncePer`), grouped per pass with its revision, and sent by a thread of their own with retries and backoff, so that a
notifier that fails or hangs never delays or fails a pass."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.core import errors, secrets
from controller.engine.ports import Notifier
from controller.engine.reconciler import PassReport

Log = Callable[..., None]
ATTEMPTS = 5  # a message is dropped (and logged) after this many failed sends
BACKOFF = 1.0  # seconds before the first retry, doubled each time
BACKOFF_CAP = 60.0


@dataclass(frozen=True)
class Event:
    key: str  # what it is about: "change/Kind/name", "finding/type/Kind/name", "health/name", "lease", "backup/name"
    state: str  # said when (key, state) differs from what was said last for the key
    line: str  # what the message says (redacted: built from redacted texts only)


class Tracker:
    """What was said of each key, and the events of each pass."""

    def __init__(self) -> None:
        self.said: dict[str, str] = {}
        self.health: dict[str, int] = {}
        self.passes = 0

    def _once(self, key: str, state: str, line: str) -> list[Event]:
        if self.said.get(key) == state:
            return []
        self.said[key] = state
        return [Event(key, state, line)]

    def of_pass(self, report: PassReport) -> list[Event]:
        events: list[Event] = []
        self.passes += 1
        for o in report.outcomes:
            c, key = o.change, f"change/{o.change.key}"
            if o.status == "failed":
                events += self._once(key, "failed", f"failed: {c.action.value} {c.key} ({c.target}): {o.message}")
            elif o.status == "ok" and self.said.get(key) == "failed":
                events += self._once(key, "ok", f"recovered: {c.action.value} {c.key} ({c.target}) done")
            elif o.status == "ok" and self.passes > 1:  # the first pass converges what was declared: not drift
                events.append(
                    Event(
                        key, f"repaired {report.reconcile_id}", f"drift repaired: {c.action.value} {c.key}: {c.reason}"
                    )
                )
        now = {f"finding/{f.type.value}/{f.kind}/{f.name}": f for f in report.found}
        for key, f in sorted(now.items()):
            events += self._once(key, "open", f"finding {f.type.value} {f.kind}/{f.name}: {f.message}")
        for key in sorted(k for k, s in self.said.items() if k.startswith("finding/") and s == "open" and k not in now):
            events += self._once(key, "resolved", f"resolved: {key.removeprefix('finding/').replace('/', ' ', 1)}")
        for name, up in sorted(report.health.items()):
            was, self.health[name] = self.health.get(name), up
            if was == 1 and up == 0:
                events += self._once(f"health/{name}", "down", f"instance {name} is down")
            elif up == 1 and self.said.get(f"health/{name}") == "down":
                events += self._once(f"health/{name}", "up", f"instance {name} is up again")
        return events


class Notifications:
    """The loop's side: events in, one message per pass (or per event outside a pass) out, through an outbox."""

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        log: Log,
        *,
        attempts: int = ATTEMPTS,
        known_secrets: Callable[[], set[str]] = set,
    ) -> None:
        self.notifiers = list(notifiers)
        self.log = log
        self.known_secrets = known_secrets  # a last safety net, as for every log line: each message is scrubbed
        self.attempts = attempts
        self.tracker = Tracker()
        self.outbox: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._send_all, name="dbstate-notify", daemon=True)
        self.thread.start()

    def after_pass(self, report: PassReport) -> None:
        events = self.tracker.of_pass(report)
        if events:
            revision = (report.revision or "(not a git checkout)")[:12]
            title = f"dbstate: {len(events)} event{'s' if len(events) > 1 else ''} at revision {revision}"
            self.outbox.put((title, "\n".join(f"- {e.line}" for e in events)))

    def event(self, key: str, state: str, line: str) -> None:
        """One event outside a pass (a lease lost, a scheduled backup failed); said once per state too."""
        if self.tracker._once(key, state, line):
            self.outbox.put((f"dbstate: {line.split(':')[0]}", f"- {line}"))

    def stop(self, wait: float = 2.0) -> None:
        self.outbox.put(None)
        self.thread.join(wait)

    def _send_all(self) -> None:
        while (item := self.outbox.get()) is not None:
            title, body = (secrets.scrub(text, self.known_secrets()) for text in item)
            for n in self.notifiers:
                self._send(n, title, body)

    def _send(self, notifier: Notifier, title: str, body: str) -> None:
        delay = BACKOFF
        for attempt in range(1, self.attempts + 1):
            try:
                notifier.send(title, body)
                return
            except errors.DbstateError as e:
                if attempt == self.attempts:
                    self.log(level="error", msg="notification dropped", notifier=notifier.name, error=str(e))
                    return
                self.log(level="warning", msg="notification failed", notifier=notifier.name, error=str(e),
                         retry_in=delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_CAP)
