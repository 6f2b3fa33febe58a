"""The maintenance switch: an instance a human works on (`policy.suspended`, or `dbstate suspend NAME`) is still
observed, probed and reported, but no change of it is planned: a pass never fights a manual upgrade."""

from __future__ import annotations

from collections.abc import Mapping

from controller.core import spec
from controller.core.plan import Note, NoteType, Plan


def suspended(state: spec.DesiredState, recorded: Mapping[str, str]) -> dict[str, str]:
    """Declared instance key -> why it is suspended (the declaration's policy, or who suspended it and why)."""
    out = {}
    for inst in state.instances:
        key = f"{inst.kind}/{inst.metadata.name}"
        if inst.spec.policy.suspended:
            out[key] = "policy.suspended is true"
        elif key in recorded:
            out[key] = recorded[key]
    return out


def hold(plan: Plan, why: Mapping[str, str]) -> Plan:
    """`plan` without the changes of suspended instances, each said in a note."""
    if not why:
        return plan
    held = sorted({c.key for c in plan.changes if c.key in why})
    notes = [
        Note(
            NoteType.SUSPENDED,
            key.split("/", 1)[0],
            key.split("/", 1)[1],
            f"suspended ({reason}): observed, "
            "probed and reported; dbstate changes nothing of it until `dbstate resume`"
            + (
                " (changes held: " + ", ".join(c.action.value for c in plan.changes if c.key == key) + ")"
                if key in held
                else ""
            ),
        )
        for key, reason in sorted(why.items())
    ]
    return Plan(tuple(c for c in plan.changes if c.key not in why), plan.findings, plan.notes + tuple(notes))
