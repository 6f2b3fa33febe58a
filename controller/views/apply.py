"""`dbstate apply`: one line per outcome as it happens, the closing count, and the JSON document."""

from __future__ import annotations

from typing import Any

from controller.core.plan import Outcome
from controller.engine.reconciler import PassResult
from controller.views import plan as plan_view

MARKS = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}


def outcome_line(o: Outcome) -> str:
    detail = "" if o.status == "ok" else f": {o.message}"
    c = o.change
    return f"  {MARKS[o.status]:<7} {c.action.value} {c.kind}/{c.name} ({c.target}) in {o.seconds:.1f}s{detail}\n"


def closing_line(outcomes: tuple[Outcome, ...]) -> str:
    failed = sum(1 for o in outcomes if o.status == "failed")
    skipped = sum(1 for o in outcomes if o.status == "skipped")
    return f"\nApply: {len(outcomes) - failed - skipped} done, {failed} failed, {skipped} skipped.\n"


def to_json(result: PassResult, outcomes: tuple[Outcome, ...], converged: bool) -> dict[str, Any]:
    return {
        "plan": plan_view.to_json(
            result.plan,
            result.loaded.errors,
            result.observed.engine,
            result.revision.commit,
            result.revision.dirty,
            disruptions=plan_view.disruptions(result.plan, result.loaded.state, result.durations),
        ),
        "outcomes": [o.to_json() for o in outcomes],
        "converged": converged,
    }
