"""The renderers: the plan as text and stable JSON, apply's outcome lines, status and validate. Pure functions of
their data; no engine needed."""

from __future__ import annotations

import io
import json
from pathlib import Path

from controller.adapters import desired
from controller.core import live
from controller.core.plan import Action, Attach, Change, Finding, FindingType, Note, NoteType, Outcome, Plan
from controller.views import apply as apply_view
from controller.views import common, status, validate
from controller.views import plan as plan_view
from tests.helpers import NETWORK, SECRET, VOLUME, instance_yaml

ENGINE = live.EngineInfo("unix:///x.sock", "20.10.24", "1.41")
START = Change(Action.START, "DatabaseInstance", "pg", "pg-db", "container is exited")
CONNECT = Change(
    Action.CONNECT,
    "Consumer",
    "app",
    "app",
    "alias db missing on edge",
    Attach("edge", ("db",), reconnect=True),
)
PLAN = Plan(
    (START, CONNECT),
    (Finding(FindingType.ORPHAN, "DatabaseInstance", "old", "no longer declared"),),
    (Note(NoteType.ADOPTED, "Network", "edge", "exists without dbstate's labels"),),
)


def test_plan_markdown_is_a_summary_line_and_collapsible_sections_with_the_changes_as_a_diff():
    """Its structure, not its prose: what a CI job posts on a merge request."""
    md = plan_view.to_markdown(PLAN, (), ENGINE, "abc123", "desired-state")
    lines = md.splitlines()
    assert lines[0] == "### :warning: dbstate plan: 1 to start, 1 to connect, 1 finding"
    assert "`desired-state` @ `abc123` against `unix:///x.sock`" in lines[2]
    assert [ln for ln in lines if ln.startswith("<details")] == [
        "<details open><summary>Changes (2)</summary>",
        "<details><summary>Findings (1): need a human</summary>",
        "<details><summary>Notes (1)</summary>",
    ]
    assert lines.count("</details>") == 3
    diff = lines[lines.index("````diff") + 1 : lines.index("````")]
    assert [ln[:2] + ln.split()[1] for ln in diff] == ["+ DatabaseInstance/pg", "+ Consumer/app"]
    assert "- **orphan** `DatabaseInstance/old`: `no longer declared`" in lines
    # text from outside cannot end its code span, nor render as Markdown
    evil = Plan((), (Finding(FindingType.ORPHAN, "DatabaseInstance", "x", "a ``tick`` and <b>"),))
    assert "```a ``tick`` and <b>```" in plan_view.to_markdown(evil, (), ENGINE, "r", "d")
    assert plan_view.to_markdown(Plan(), (), ENGINE, "r", "d").startswith("### :white_check_mark: dbstate plan: no")


def test_plan_text_lists_changes_findings_notes_and_a_summary():
    text = plan_view.to_text(PLAN, (), ENGINE, "abc123 (dirty)", "desired-state", colour=False)
    assert "  desired state  desired-state @ abc123 (dirty)" in text
    assert "  > DatabaseInstance/pg  start container pg-db: container is exited" in text
    assert "connect app to edge: alias db missing on edge" in text
    assert "aliases db (disconnect, then connect)" in text
    assert "! orphan DatabaseInstance/old: no longer declared" in text
    assert "- adopted Network/edge" in text
    assert text.rstrip().endswith("Plan: 1 to start, 1 to connect. 1 finding.")
    assert "\033[" not in text
    assert "\033[" in plan_view.to_text(PLAN, (), ENGINE, "abc", "d", colour=True)


def test_plan_json_is_stable():
    doc = plan_view.to_json(PLAN, (), ENGINE, "abc123", True)
    assert list(doc) == ["revision", "dirty", "engine", "in_sync", "changes", "findings", "notes", "errors", "summary"]
    assert doc["engine"] == {"host": "unix:///x.sock", "version": "20.10.24", "api_version": "1.41"}
    assert doc["summary"]["start"] == 1 and doc["summary"]["findings"] == 1 and doc["in_sync"] is False
    assert json.loads(common.dumps(doc)) == doc


def test_plan_text_with_errors_says_what_is_held_back(tmp_path: Path):
    loaded = desired.load_text(instance_yaml().replace("engine: postgres", "engine: nosuch"), "x.yaml", {})
    text = plan_view.to_text(Plan(), loaded.errors, ENGINE, "r", "d", colour=False)
    assert "Errors in the desired state (those resources are held back):" in text
    assert "x.yaml:" in text and "No changes for what loaded; the desired state has errors." in text


def test_apply_lines_and_closing_count():
    outcomes = (Outcome(START, "ok", "done", 0.42), Outcome(CONNECT, "failed", "engine refused", 1.0))
    assert apply_view.outcome_line(outcomes[0]) == "  ok      start DatabaseInstance/pg (pg-db) in 0.4s\n"
    assert apply_view.outcome_line(outcomes[1]).endswith("in 1.0s: engine refused\n")
    assert apply_view.closing_line(outcomes) == "\nApply: 1 done, 1 failed, 0 skipped.\n"


def test_status_text_shows_failing_resources_and_health():
    last = {
        "command": "run",
        "started": 0.0,
        "revision": "abcdef1234567890",
        "dirty": 0,
        "changes": 2,
        "failed": 1,
        "findings": 0,
        "errors": 0,
    }
    resources = [
        {"key": "DatabaseInstance/pg", "status": "failing", "message": "boom", "attempts": 3, "next_retry": 3600.0}
    ]
    health = [
        {
            "instance": "pg",
            "reachable": 0,
            "failures": 2,
            "last_ok": None,
            "error": "refused",
            "probed": 0.0,
            "version": None,
            "rtt_ms": None,
        }
    ]
    text = status.to_text(last, resources, health)
    assert text.startswith("last pass: run at 1970-01-01 00:00:00Z, revision abcdef123456: 2 changes, 1 failed")
    assert "  failing   DatabaseInstance/pg  attempts 3, next retry 01:00:00Z: boom" in text
    assert "  down      pg  2 failed in a row (never up): refused" in text
    assert status.to_text(None, [], []) == "no pass recorded yet\n"


def test_validate_summary_and_problems():
    loaded = desired.load_text("---\n".join([NETWORK, VOLUME, instance_yaml()]), "ok.yaml", {"PG_PASSWORD": SECRET})
    summary = validate.summary_text(Path("ds"), loaded)
    assert summary.startswith("ds: valid, 3 resources in 1 files")
    assert "  DatabaseInstance (1): pg" in summary
    doc = json.loads(validate.to_json(Path("ds"), loaded, True))
    assert doc["valid"] is True and doc["resources"]["Volume"] == ["pg_data"]
    assert SECRET not in summary + json.dumps(doc)


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert common.colour("auto", Tty()) and not common.colour("auto", io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not common.colour("auto", Tty()) and common.colour("always", io.StringIO())


def test_every_action_has_a_symbol_and_a_colour() -> None:
    from controller.core import plan as plan_module
    from controller.views import plan as plan_view

    for action in plan_module.Action:
        assert action in plan_module.SYMBOLS and action in plan_view.ACTION_COLOUR, action


def test_each_change_says_what_it_interrupts_in_text_json_and_markdown():
    from controller.core.disruption import Disruption

    hurts = [
        Disruption(("pg-db", "app"), 12.0, "its last start took that long"),
        Disruption((), None, "a new attachment"),
    ]
    text = plan_view.to_text(PLAN, (), ENGINE, "abc", "d", colour=False, disruptions=hurts)
    assert "      interrupts pg-db, app for about 12 s (its last start took that long)" in text.splitlines()
    assert "a new attachment" not in text  # nothing interrupted: not a line of its own
    doc = plan_view.to_json(PLAN, (), ENGINE, "abc", False, disruptions=hurts)
    assert [c["disruption"]["interrupts"] for c in doc["changes"]] == [["pg-db", "app"], []]
    assert "interrupts pg-db, app for about 12 s" in plan_view.to_markdown(PLAN, (), ENGINE, "abc", "d", hurts)


def test_the_web_view_says_what_a_pending_change_interrupts():
    from controller.core import overview
    from controller.views import web

    text = "---\n".join([NETWORK, VOLUME, instance_yaml()])
    state = desired.load_text(text, "t.yaml", {"PG_PASSWORD": SECRET}).state
    recreate = Change(Action.RECREATE, "DatabaseInstance", "pg", "pg-db", "the declaration changed")
    durations = {("recreate", "DatabaseInstance/pg"): [9.0]}
    ov = overview.build(state, Plan((recreate,)), (), "abc", {}, 0.0, durations)
    assert ov["pending"][0]["disruption"] == "interrupts pg-db for about 9 s (its last recreate took that long)"
    page = web.render("overview.html", web.overview_model("s.db", [], [], [], ov, {}))
    assert '<span class="disruption">interrupts pg-db for about 9 s (its last recreate took that long)</span>' in page
