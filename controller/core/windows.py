"""Maintenance windows (`policy.window`): when the changes that interrupt a database (a recreate, a restart, an
upgrade) may run. A window opens at each time its cron expression names (five fields: minute, hour, day of month,
month, day of week; `*`, lists, ranges, steps, JAN-DEC and SUN-SAT names; in its time zone) and stays open for its
duration. Outside every window of an instance, such a change is held (a `held` note says until when); repairs that
interrupt nothing (start a stopped server, reconnect) are never held. `apply --ignore-window` runs them anyway."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.core import disruption, live, spec
from controller.core.plan import Action, Change, Note, NoteType, Plan

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
NAMES = {
    3: {
        m: i + 1
        for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
    },
    4: {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month was `*`
    any_weekday: bool  # day of week was `*`

    def day_matches(self, d: datetime) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # cron: both restricted means either one
            return dom and dow
        return dom or dow


def parse(text: str) -> Cron:
    """A five-field cron expression; ValueError naming the field that is wrong."""
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}"
        )
    sets = [_field(p, i) for i, p in enumerate(parts)]
    weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
    return Cron(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")


def _field(text: str, index: int) -> frozenset[int]:
    name, low, high = FIELDS[index]
    out: set[int] = set()
    for item in text.split(","):
        m = re.fullmatch(r"(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/(\d+))?", item)
        if m is None:
            raise ValueError(f"{name}: {item!r} is not a value, a range or a step")
        start, end, step = m.group(1), m.group(2), int(m.group(3) or 1)
        a, b = (low, high) if start == "*" else (_value(start, index), _value(end or start, index))
        if m.group(3) and start != "*" and end is None:
            b = high  # `5/15`: from 5, every 15
        if not (low <= a <= high and low <= b <= high) or a > b or step < 1:
            raise ValueError(f"{name}: {item!r} is outside {low}-{high}")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def _value(text: str, index: int) -> int:
    if text.isdigit():
        return int(text)
    named = NAMES.get(index, {}).get(text.upper())
    if named is None:
        raise ValueError(f"{FIELDS[index][0]}: {text!r} is not a number{' or a name' if index in NAMES else ''}")
    return named


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (e.g. UTC, Europe/Berlin)") from None


def _starts_after(cron: Cron, local: datetime, days: int = 400) -> datetime | None:
    """The first time at or after `local` (naive, wall time) that `cron` names, within `days`."""
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(days):
        if cron.day_matches(day):
            for h in sorted(cron.hours):
                for mi in sorted(cron.minutes):
                    t = day.replace(hour=h, minute=mi)
                    if t >= local:
                        return t
        day += timedelta(days=1)
    return None


def state_at(window: spec.Window, now: float) -> tuple[bool, float | None]:
    """(open now, when it opens next: a timestamp) for one window."""
    cron, tz, length = parse(window.cron), zone(window.time_zone), spec.duration_seconds(window.duration)
    local = datetime.fromtimestamp(now, tz).replace(tzinfo=None, second=0, microsecond=0)
    back = _starts_after(cron, local - timedelta(seconds=length), days=int(length // 86400) + 2)
    if back is not None and back <= local and back.replace(tzinfo=tz).timestamp() + length > now:
        return True, None
    nxt = _starts_after(cron, local + timedelta(minutes=1))
    return False, nxt.replace(tzinfo=tz).timestamp() if nxt is not None else None


def hold(plan: Plan, state: spec.DesiredState, observed: live.LiveState, now: float, ignore: bool = False) -> Plan:
    """The changes that interrupt a database held outside its windows, each said in a `held` note. A held change to
    a server that is down does not keep it down: it is started as it is (that interrupts nothing), unless another
    running container holds its data."""
    if ignore:
        return plan
    windows: Mapping[str, Sequence[spec.Window]] = {
        i.metadata.name: i.spec.policy.windows for i in state.instances if i.spec.policy.windows
    }
    if not windows:
        return plan
    kept, notes = [], list(plan.notes)
    for c in plan.changes:
        ws = windows.get(c.name) if str(c.kind) == spec.Kind.DATABASE_INSTANCE else None
        if not ws or c.action not in disruption.DOWN:
            kept.append(c)
            continue
        states = [state_at(w, now) for w in ws]
        if any(is_open for is_open, _ in states):
            kept.append(c)
            continue
        nxt = min((t for _, t in states if t is not None), default=None)
        until = _when(nxt, ws[0].time_zone) if nxt is not None else "no window opens within 400 days"
        said = f"{c.action.value} of {c.target} held until {until} (policy.window; `apply --ignore-window` runs it now)"
        start = _start_instead(c, observed)
        if start is not None:
            kept.append(start)
            said += "; meanwhile it is started as it is"
        notes.append(Note(NoteType.HELD, c.kind, c.name, said))
    return dataclasses.replace(plan, changes=tuple(kept), notes=tuple(notes))


def _start_instead(c: Change, observed: live.LiveState) -> Change | None:
    """A START of the stopped container a held change targets, when no other running container mounts its data."""
    container = observed.container(c.target)
    if container is None or container.state in ("running", "restarting", "paused"):
        return None
    mine = {(m.type, m.source.rstrip("/")) for m in container.mounts if m.type in ("volume", "bind") and m.rw}
    holders = [o for o in observed.containers if o.name != container.name and o.state in ("running", "restarting")]
    if any(mine & {(m.type, m.source.rstrip("/")) for m in o.mounts if m.rw} for o in holders):
        return None
    reason = f"container is {container.state}; its {c.action.value} waits for its window"
    return Change(Action.START, c.kind, c.name, c.target, reason, None, c.requires, c.resource)


def _when(ts: float, tz: str) -> str:
    local = datetime.fromtimestamp(ts, zone(tz))
    return f"{local:%Y-%m-%d %H:%M} {tz}" + ("" if tz == "UTC" else f" ({datetime.fromtimestamp(ts, UTC):%H:%M} UTC)")
