"""What the web view shows of a pass beyond the state database's rows: the changes still pending, the findings and
notes with what a human should do, and which consumers use each instance. Built from a pass as plain JSON-ready
data; every text in it is already redacted (reasons and messages never hold a secret), so it is stored as it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.core import disruption, monitoring, plan, spec
from controller.core.health import ProbeResult


def build(
    state: spec.DesiredState,
    the_plan: plan.Plan,
    outcomes: Iterable[plan.Outcome],
    revision: str | None,
    probes: Mapping[str, ProbeResult],
    finished: float,
    durations: disruption.Durations | None = None,
) -> dict[str, Any]:
    done = {(o.change.key, o.change.action, o.change.target) for o in outcomes if o.status == "ok"}
    pending = [
        {
            "action": c.action.value,
            "kind": c.kind,
            "name": c.name,
            "target": c.target,
            "reason": c.reason,
            "disruption": disruption.of(c, state, durations or {}).line(),
        }
        for c in the_plan.changes
        if (c.key, c.action, c.target) not in done
    ]
    instances: dict[str, dict[str, Any]] = {}
    for inst in state.instances:
        p = probes.get(inst.metadata.name)
        instances[inst.metadata.name] = {
            "engine": inst.spec.engine.value,
            "version": inst.spec.version,
            "image": inst.spec.image,
            "container": inst.container_name,
            "suspended": inst.spec.policy.suspended,
            "upgrade": inst.spec.policy.upgrade.value,
            "drift": inst.spec.policy.drift.value,
            "backup_schedule": inst.spec.policy.backup.schedule,
            "server_version": p.version if p is not None else None,
            "consumers": [],
            "exporter": None,
        }
    for exp in state.exporters:
        if exp.spec.instance in instances:
            instances[exp.spec.instance]["exporter"] = {
                "container": exp.container_name,
                "image": exp.spec.image,
                "scrape": monitoring.target(exp),
                "login": exp.spec.user,
            }
    troubles = {(f.kind, f.name): f for f in the_plan.findings}
    for consumer in state.consumers:
        trouble = troubles.get((spec.Kind.CONSUMER, consumer.metadata.name))
        for use in consumer.spec.uses:
            if use.instance in instances:
                instances[use.instance]["consumers"].append(
                    {
                        "name": consumer.metadata.name,
                        "container": consumer.container_name,
                        "host_env": use.host_env,
                        "connection": "verified" if trouble is None else f"{trouble.type.value}: {trouble.message}",
                    }
                )
    return {
        "revision": revision,
        "finished": finished,
        "instances": instances,
        "pending": pending,
        "findings": [
            {**_said(f.type.value, f.kind, f.name, f.message), "blocks": f.type.blocks} for f in the_plan.findings
        ],
        "notes": [_said(n.type.value, n.kind, n.name, n.message) for n in the_plan.notes],
    }


def _said(type_: str, kind: str, name: str, message: str) -> dict[str, str]:
    return {"type": type_, "kind": kind, "name": name, "message": message}
