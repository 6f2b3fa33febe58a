"""What each change of a plan interrupts, and for about how long: the database itself (a restart, a recreate, an
upgrade), the declared consumers that use it, or nothing (a create of what does not serve yet, a start of what is
down, an adoption). The time is the last measured duration of the same change of the same resource, else the median
of that action's measured durations on this engine, else unknown: said, never made up."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core import spec
from controller.core.plan import Action, Attach, Change

# Measured durations: (action, "Kind/name") -> seconds of the last successful one; (action, "") -> all of that action's
Durations = Mapping[tuple[str, str], Sequence[float]]

DOWN = frozenset({Action.RECREATE, Action.RESTART, Action.UPGRADE})  # the server stops and starts again


@dataclass(frozen=True, slots=True)
class Disruption:
    interrupts: tuple[str, ...]  # what stops serving (the container, then the consumers that use it); () nothing
    seconds: float | None  # about how long; None: not measured yet
    basis: str  # "last time", "median of N on this engine", "not measured yet", or why nothing is interrupted

    def to_json(self) -> dict[str, Any]:
        return {"interrupts": list(self.interrupts), "seconds": self.seconds, "basis": self.basis}

    def line(self) -> str:
        if not self.interrupts:
            return f"disrupts nothing ({self.basis})"
        who = ", ".join(self.interrupts)
        if self.seconds is None:
            return f"interrupts {who}: for how long is {self.basis}"
        return f"interrupts {who} for about {_human(self.seconds)} ({self.basis})"


def of(change: Change, state: spec.DesiredState, durations: Durations) -> Disruption:
    """The disruption of `change` in a plan for `state`."""
    a = change.action
    if str(change.kind) == spec.Kind.EXPORTER:  # its database serves on; only its metrics pause
        return Disruption((), None, "no database: the instance's metrics pause for seconds")
    if a in (Action.CREATE, Action.ADOPT) or str(change.kind) in (spec.Kind.NETWORK, spec.Kind.VOLUME):
        return Disruption((), None, "nothing serves there yet" if a is Action.CREATE else "nothing is restarted")
    if a is Action.START:
        return Disruption((), None, "it is down already")
    if a is Action.CONNECT:
        payload = change.payload
        if isinstance(payload, Attach) and payload.reconnect:
            return _timed(change, (change.target,), durations)
        return Disruption((), None, "a new attachment")
    users = tuple(_users(change, state))
    if a is Action.DISCONNECT:
        return Disruption((change.target,), None, "until it is connected again: an undeclared attachment")
    if a is Action.REMOVE:
        return Disruption((change.target, *users), None, "for good: it is no longer declared")
    if a in DOWN:
        return _timed(change, (change.target, *users), durations)
    return Disruption((), None, "nothing is restarted")


def _users(change: Change, state: spec.DesiredState) -> list[str]:
    """The declared consumers of the instance a change touches (their containers)."""
    if str(change.kind) != spec.Kind.DATABASE_INSTANCE:
        return []
    return sorted(c.container_name for c in state.consumers if any(u.instance == change.name for u in c.spec.uses))


def _timed(change: Change, who: tuple[str, ...], durations: Durations) -> Disruption:
    key = f"{change.kind}/{change.name}"
    mine = durations.get((change.action.value, key)) or ()
    if mine:
        return Disruption(who, round(mine[-1], 1), f"its last {change.action.value} took that long")
    every = durations.get((change.action.value, "")) or ()
    if every:
        return Disruption(who, round(statistics.median(every), 1), f"the median of {len(every)} on this engine")
    return Disruption(who, None, f"not measured yet (no {change.action.value} on this engine so far)")


def _human(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
