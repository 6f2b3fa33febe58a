"""Maintenance windows: cron fields as cron reads them, open or when next, in a time zone; what they hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.core import live, spec, windows
from controller.core.plan import Action, Change, NoteType, Plan

ENGINE = live.EngineInfo("unix:///x", "20.10", "1.41")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def window(cron: str, duration: str = "2h", tz: str = "UTC") -> spec.Window:
    return spec.Window.model_validate({"cron": cron, "duration": duration, "timeZone": tz})


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 2 * *", "has 5 fields"),
        ("61 2 * * *", "minute: '61' is outside 0-59"),
        ("0 2 * * FUNDAY", "day of week: 'FUNDAY' is not a number or a name"),
        ("0 5-2 * * *", "hour: '5-2' is outside"),
    ],
)
def test_a_wrong_cron_names_its_field(cron, message):
    with pytest.raises(ValueError, match=message):
        windows.parse(cron)


def test_fields_ranges_steps_names_and_the_day_rule():
    c = windows.parse("*/15 2-4 1,15 JAN-MAR SUN")
    assert c.minutes == {0, 15, 30, 45} and c.hours == {2, 3, 4} and c.months == {1, 2, 3} and c.weekdays == {0}
    # both days restricted: either one (cron's rule)
    assert c.day_matches(datetime(2026, 1, 4)) and c.day_matches(datetime(2026, 1, 15))
    assert not c.day_matches(datetime(2026, 1, 5))
    assert windows.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too


def test_open_now_or_when_next_in_its_time_zone():
    sunday_2am = window("0 2 * * SUN", "2h", "Europe/Berlin")
    # Sunday 2026-12-06 02:30 in Berlin is 01:30 UTC: open
    assert windows.state_at(sunday_2am, ts("2026-12-06T01:30:00")) == (True, None)
    # Friday: closed, opens Sunday 02:00 Berlin = 01:00 UTC
    assert windows.state_at(sunday_2am, ts("2026-12-04T10:00:00")) == (False, ts("2026-12-06T01:00:00"))
    # just after it closed (04:00 Berlin): next Sunday
    assert windows.state_at(sunday_2am, ts("2026-12-06T03:00:00")) == (False, ts("2026-12-13T01:00:00"))
    with pytest.raises(ValueError, match="not a time zone"):
        window("0 2 * * *", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="shorter than a minute"):
        window("0 2 * * *", duration="30s")


def test_only_what_interrupts_a_database_waits_for_its_window():
    from controller.adapters import desired
    from tests.helpers import ENV, network, redis_instance

    text = "---\n".join(
        [
            network("net-a"),
            redis_instance("kv-a", "kv-a-db", extra="  policy: {window: {cron: '0 2 * * SUN', duration: 1h}}\n"),
        ]
    )
    state = desired.load_text(text, "t.yaml", ENV).state
    recreate = Change(Action.RECREATE, "DatabaseInstance", "kv-a", "kv-a-db", "the declaration changed")
    running = live.LiveState(ENGINE, (live.Container("i", "kv-a-db", "redis:7", "running"),))
    p = windows.hold(Plan((recreate,)), state, running, ts("2026-12-04T10:00:00"))
    assert p.changes == ()
    [note] = p.notes
    assert note.type is NoteType.HELD and "held until 2026-12-06 02:00 UTC" in note.message
    assert windows.hold(Plan((recreate,)), state, running, ts("2026-12-06T02:10:00")).changes == (recreate,)
    assert windows.hold(Plan((recreate,)), state, running, ts("2026-12-04T10:00:00"), ignore=True).changes == (
        recreate,
    )
    # down: started as it is meanwhile, unless another running container holds its data
    data = (live.Mount("volume", "kv-data", "/data"),)
    down = live.Container("i", "kv-a-db", "redis:7", "exited", mounts=data)
    p = windows.hold(Plan((recreate,)), state, live.LiveState(ENGINE, (down,)), ts("2026-12-04T10:00:00"))
    assert [c.action for c in p.changes] == [Action.START] and "meanwhile it is started" in p.notes[0].message
    holder = live.Container("j", "intruder", "redis:7", "running", mounts=data)
    p = windows.hold(Plan((recreate,)), state, live.LiveState(ENGINE, (down, holder)), ts("2026-12-04T10:00:00"))
    assert p.changes == ()
