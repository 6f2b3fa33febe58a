"""What a desired state may touch, set by the controller's own configuration (flags or env of the commands, never
the repository: as Argo CD's AppProject bounds an Application). Containers dbstate created are always in scope; a
container made elsewhere (a Consumer with `image: null`) only when it matches an allowed selector: a compose project
or a label. Outside the scope dbstate only reads: it never connects, disconnects, starts or removes. A bind mount (a
host directory) may be declared only under a bind root the controller allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.core.live import Container

COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass(frozen=True)
class Scope:
    compose_projects: frozenset[str] = frozenset()
    labels: frozenset[tuple[str, str]] = frozenset()  # (key, value)
    bind_roots: frozenset[str] = frozenset()  # host directories under which a bind mount may be declared
    everything: bool = False  # no bound at all (the diff's unit tests and tools; never a command's default)

    def allows(self, c: Container) -> bool:
        if c.managed or self.everything:
            return True
        if c.labels.get(COMPOSE_PROJECT) in self.compose_projects:
            return True
        return any(c.labels.get(k) == v for k, v in self.labels)

    def allows_bind(self, path: str) -> bool:
        if self.everything:
            return True
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in self.bind_roots)

    def describe(self) -> str:
        if self.everything:
            return "everything"
        parts = [f"compose project {p}" for p in sorted(self.compose_projects)]
        parts += [f"label {k}={v}" for k, v in sorted(self.labels)]
        return ", ".join(parts) or "nothing beyond what dbstate created"
