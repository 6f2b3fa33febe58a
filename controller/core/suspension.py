"""The maintenance switch: an instance a human works on (`policy.suspended`, or `dbstate suspend NAME`) is still
observed, probed and reported, but no change of it is planned: a pass never fights a manual upgrade."""

from __future__ import annotations

from collections.abc import Mapping

from controller.core import spec
from controller.core.plan import Change, Note, NoteType, Plan


def _instance(c: Change) -> str:
    """The instance a change is of: an exporter's is its instance's (its login is made in that server)."""
    return f"{spec.Kind.DATABASE_INSTANCE}/{c.name}" if c.kind == spec.Kind.EXPORTER else c.key


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


def hold(plan: Plan, why: Mapping[str, str], jobs: Mapping[str, str] | None = None) -> Plan:
    """`plan` without the changes of suspended instances, each said in a note; `jobs`: instances that a one-off job
    of the controller works on (a restore handed to `dbstate run`), held the same way until the job ends."""
    jobs = {k: v for k, v in (jobs or {}).items() if k not in why}
    if not why and not jobs:
        return plan
    held = sorted({_instance(c) for c in plan.changes if _instance(c) in why or _instance(c) in jobs})
    notes = [
        Note(
            NoteType.SUSPENDED,
            key.split("/", 1)[0],
            key.split("/", 1)[1],
            f"suspended ({reason}): observed, "
            "probed and reported; dbstate changes nothing of it until `dbstate resume`"
            + (
                " (changes held: " + ", ".join(c.action.value for c in plan.changes if _instance(c) == key) + ")"
                if key in held
                else ""
            ),
        )
        for key, reason in sorted(why.items())
    ] + [
        Note(
            NoteType.SUSPENDED,
            key.split("/", 1)[0],
            key.split("/", 1)[1],
            f"held for {reason}: observed, probed and reported; dbstate changes nothing else of it until the job ends"
            + (
                " (changes held: " + ", ".join(c.action.value for c in plan.changes if _instance(c) == key) + ")"
                if key in held
                else ""
            ),
        )
        for key, reason in sorted(jobs.items())
    ]
    kept = tuple(c for c in plan.changes if _instance(c) not in why and _instance(c) not in jobs)
    return Plan(kept, plan.findings, plan.notes + tuple(notes))
