"""A `History` kept in memory: for a command whose state database cannot be opened (a read-only directory), and for
the engine's unit tests. It forgets everything when the process ends."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping

from controller.core import plan
from controller.core.adoption import Adoption
from controller.core.health import ProbeResult


class MemoryHistory:
    def __init__(self) -> None:
        self.volumes: dict[str, str | None] = {}
        self.acks: set[tuple[str, str]] = set()
        self.passes: dict[int, dict[str, object]] = {}
        self.findings: dict[int, list[plan.Finding]] = {}
        self.outcomes: dict[int, list[plan.Outcome]] = {}
        self.resources: list[plan.ResourceStatus] = []
        self.failures: dict[str, int] = {}
        self.adopted: dict[str, Adoption] = {}
        self.suspended: dict[str, str] = {}
        self.overview_body: dict[str, object] | None = None
        self._ids = itertools.count(1)

    def seen_volumes(self) -> dict[str, str | None]:
        return dict(self.volumes)

    def adoptions(self) -> dict[str, Adoption]:
        return dict(self.adopted)

    def record_adoption(self, adopted: Adoption) -> None:
        self.adopted[adopted.key] = adopted

    def suspensions(self) -> dict[str, str]:
        return dict(self.suspended)

    def suspend(self, key: str, who: str, why: str) -> None:
        self.suspended[key] = f"by {who}: {why}"

    def acknowledged(self, type_: str) -> frozenset[str]:
        return frozenset(n for t, n in self.acks if t == type_)

    def ack(self, type_: str, name: str) -> None:
        self.acks.add((type_, name))

    def mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None:
        for n, identity in volumes.items():
            self.volumes[n] = identity if identity is not None else self.volumes.get(n)
            self.acks.discard(("volume-lost", n))

    def begin_pass(
        self,
        command: str,
        revision: str | None,
        dirty: bool | None,
        trigger: str | None = None,
        started: float | None = None,
    ) -> int:
        pass_id = next(self._ids)
        self.passes[pass_id] = {
            "command": command,
            "revision": revision,
            "dirty": dirty,
            "started": started or time.time(),
            "trigger": trigger,
        }
        return pass_id

    def set_overview(self, body: Mapping[str, object]) -> None:
        self.overview_body = dict(body)

    def overview(self) -> dict[str, object] | None:
        return self.overview_body

    def prune(self, before: float) -> int:
        newest = max(self.passes, default=0)
        old = [i for i, p in self.passes.items() if float(p["started"]) < before and i < newest]  # type: ignore[arg-type]
        for i in old:
            self.passes.pop(i)
            self.findings.pop(i, None)
            self.outcomes.pop(i, None)
        return len(old)

    def record_findings(self, pass_id: int, findings: Iterable[plan.Finding]) -> None:
        self.findings.setdefault(pass_id, []).extend(findings)

    def record_outcome(self, pass_id: int, outcome: plan.Outcome) -> None:
        self.outcomes.setdefault(pass_id, []).append(outcome)

    def durations(self) -> dict[tuple[str, str], list[float]]:
        out: dict[tuple[str, str], list[float]] = {}
        for outcomes in self.outcomes.values():
            for o in outcomes:
                if o.status == "ok":
                    a = o.change.action.value
                    out.setdefault((a, f"{o.change.kind}/{o.change.name}"), []).append(o.seconds)
                    out.setdefault((a, ""), []).append(o.seconds)
        return out

    def finish_pass(self, pass_id: int, changes: int, failed: int, findings: int, errors: int) -> None:
        self.passes[pass_id].update(changes=changes, failed=failed, findings=findings, errors=errors)

    def record_failed_pass(self, command: str, trigger: str | None, started: float, error: str) -> None:
        self.passes[next(self._ids)] = {"command": command, "trigger": trigger, "started": started, "error": error}

    def set_resources(self, rows: Iterable[plan.ResourceStatus]) -> None:
        self.resources = list(rows)

    def record_probes(self, results: Iterable[ProbeResult], keep: Iterable[str]) -> dict[str, int]:
        results = list(results)
        counts = {r.instance: 0 if r.reachable else self.failures.get(r.instance, 0) + 1 for r in results}
        kept = set(keep) | set(counts)
        self.failures = {n: c for n, c in self.failures.items() if n in kept} | counts
        return counts
