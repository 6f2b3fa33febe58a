"""The ports the engine talks to: Protocols that adapters implement (the Docker engine, the state store)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Runtime(Protocol):
    """What apply needs from a container engine. Every method is idempotent where the engine allows it, retries
    transient errors itself (one depth: the adapter), and raises `core.errors.EngineError` subclasses."""

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None: ...

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None: ...

    def create_container(
        self,
        name: str,
        image: str,
        env: Mapping[str, str],
        command: Sequence[str],
        labels: Mapping[str, str],
        networks: Mapping[str, Sequence[str]],
        volumes: Mapping[str, str],
        ports: Sequence[str],
        restart_policy: str,
    ) -> None: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str, timeout: int) -> None: ...

    def rename(self, name: str, new_name: str) -> None: ...

    def remove_container(self, name: str) -> None: ...

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None: ...

    def disconnect(self, container: str, network: str) -> None: ...


class Store(Protocol):
    """Where apply records what it did."""

    def record_outcome(self, pass_id: int, outcome: Any) -> None: ...


class Reconciler(Protocol):
    """One level-triggered pass: re-read both sides, apply what is not waiting for a retry, report."""

    def run_pass(
        self, trigger: str, deferred: Callable[[str], bool], should_stop: Callable[[], bool]
    ) -> PassReport: ...

    def record_status(self, report: PassReport, backoffs: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class PassReport:
    """What a pass did, for the loop's queue, metrics, logs and the status table."""

    reconcile_id: str
    trigger: str
    revision: str | None
    dirty: bool | None
    duration: float
    outcomes: tuple[Any, ...]  # engine.apply.Outcome
    pending: tuple[str, ...]  # keys with changes that were deferred (waiting for a retry)
    drifted: frozenset[str]  # keys the plan had changes for
    findings: Mapping[str, int]  # type -> count
    finding_keys: frozenset[str]
    errors: int
    health: Mapping[str, int]  # instance name -> 1 running / 0 not, when known
    in_sync_keys: frozenset[str] = field(default_factory=frozenset)
    problems: tuple[Any, ...] = ()  # core.diagnostics.Diagnostic: the desired state's errors, with file and line
    probes: Mapping[str, Any] = field(default_factory=dict)  # core.health.ProbeResult per instance, when probing
