"""Text from outside made safe to print (core/text.py), and the nets that use it: the views, the logs, the probes."""

import io
import json

from controller.core import hosts
from controller.core.health import ProbeResult
from controller.core.text import printable, terminal_safe

EVIL = "15.4\x1b]0;owned\x07\x1b[2J\r\nFAKE LOG LINE\x9b31m\x00"


def test_printable_leaves_no_control_character_and_keeps_the_rest():
    assert printable(EVIL) == "15.4?]0;owned??[2J??FAKE LOG LINE?31m?"
    assert printable("PostgreSQL 15.4 (Debian 15.4-1.pgdg120+1) — ünïcode") == (
        "PostgreSQL 15.4 (Debian 15.4-1.pgdg120+1) — ünïcode"
    )


def test_terminal_safe_keeps_our_lines_tabs_and_colours_only():
    ours = "\033[1mdbstate plan\033[0m\n\tline\n"
    assert terminal_safe(ours) == ours
    assert terminal_safe(f"version {EVIL}\n") == "version 15.4?]0;owned??[2J??FAKE LOG LINE?31m?\n".replace(
        "??FAKE", "?\nFAKE"
    )


def test_the_views_net_and_the_log_lines():
    from controller import logs
    from controller.views.common import scrub

    assert "\x1b]" not in scrub(f"  up pg {EVIL}\n", frozenset()) and "\x07" not in scrub(EVIL, frozenset())
    for fmt in ("text", "json"):
        out = io.StringIO()
        logs.logger(fmt, set, out)(level="info", msg="probe", version=EVIL)
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 and "\x1b" not in lines[0] and "\x07" not in lines[0], lines
        if fmt == "json":
            assert json.loads(lines[0])["version"].startswith("15.4")


def test_a_probe_result_is_printable_and_a_host_too():
    from controller.adapters.probes import _printable

    r = _printable(ProbeResult("pg", "10.0.0.2", True, version=EVIL, auth_weak=(EVIL,), facts={"k": EVIL}))
    assert r.version and "\x1b" not in r.version and "\x1b" not in r.auth_weak[0] and "\x1b" not in r.facts["k"]
    assert hosts.host_of("post\x1b[2Jgres:5432") == "post?[2Jgres"
