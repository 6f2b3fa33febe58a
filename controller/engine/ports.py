"""The ports the engine talks to: Protocols that adapters implement (the desired state, the Docker engine, the
database probes, the state store, the lease, the clock). Typed with the core's data only, so that the engine never
imports an adapter and a test can hand it a fake."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from controller.core import live, plan, spec
from controller.core.adoption import Adoption
from controller.core.databases import Ran
from controller.core.dumps import Manifest
from controller.core.health import ProbeResult, ProbeTarget
from controller.core.revision import Desired as Desired  # what a DesiredSource returns


class DesiredSource(Protocol):
    """Where the desired state comes from: the files of a directory, or what is committed at HEAD."""

    def load(self) -> Desired: ...


class Observer(Protocol):
    """A snapshot of the engine: every container, network and volume; `inspect` names the containers whose aliases
    and environment the diff needs, `inspect_all` inspects every one (audit)."""

    host: str

    def observe(self, inspect: Collection[str] = (), *, inspect_all: bool = False) -> live.LiveState: ...


class Runtime(Protocol):
    """What apply needs from a container engine. Every method is idempotent where the engine allows it, retries
    transient errors itself (one depth: the adapter), and raises `core.errors.EngineError` subclasses."""

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None: ...

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None: ...

    def volume_identity(self, name: str) -> str | None:
        """Which volume of that name this is (`core.labels.volume_identity`), or None when there is none."""
        ...

    def volume_mountpoint(self, name: str) -> str | None:
        """Where a `local` volume's data lies on the engine's host (None: another driver, or no such volume)."""
        ...

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
        read_only: Collection[str] = (),
        secrets: Collection[str] = (),
    ) -> None:
        """`secrets`: the keys of `env` whose values are secrets (an engine that can keep them apart, Swarm, does)."""
        ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str, timeout: int) -> None: ...

    def rename(self, name: str, new_name: str) -> None: ...

    def make_inert(self, name: str, labels: Mapping[str, str]) -> None:
        """Replace the stopped container `name` by a copy (same image, command, env, mounts) that nothing starts: no
        restart policy, no network, no compose labels (so compose cannot match it), with `labels` added."""
        ...

    def remove_container(self, name: str) -> None: ...

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None: ...

    def disconnect(self, container: str, network: str) -> None: ...

    def attachments(self, container: str) -> list[tuple[str, tuple[str, ...]]]:
        """The networks a container is on, each with its aliases."""
        ...

    def remove_network(self, name: str) -> None:
        """Remove a network dbstate made for a moment (the private network of a server being restored); one that is
        gone already is fine."""
        ...

    def pause(self, name: str) -> bool:
        """Freeze a running container's processes (`docker pause`): True when this call paused it, False when it was
        not running (or does not exist, or is paused already): then it is not for this caller to unpause."""
        ...

    def unpause(self, name: str) -> None: ...


ProbeJob = tuple[str, spec.DatabaseInstance | ProbeTarget, str]  # (key, who to log in as, address)


class Prober(Protocol):
    """Logs in to database servers. Never raises: a failure is a result."""

    def probe_all(
        self,
        instances: Iterable[spec.DatabaseInstance],
        observed: live.LiveState,
        *,
        timeout: float,
        internal: frozenset[str],
    ) -> dict[str, ProbeResult]: ...

    def probe_many(self, jobs: Sequence[ProbeJob], timeout: float) -> dict[str, ProbeResult]: ...

    def handshake(self, address: str, timeout: float) -> str | None:
        """The version a MariaDB/MySQL server announces before any login."""
        ...


class History(Protocol):
    """What dbstate remembers between passes: the passes and their outcomes, the volumes it has seen (so that a lost
    one is never recreated empty), acknowledgements, and the probes' consecutive failures."""

    def seen_volumes(self) -> Mapping[str, str | None]:
        """Declared volumes seen on the engine before, with their identity when known."""
        ...

    def acknowledged(self, type_: str) -> frozenset[str]: ...

    def adoptions(self) -> Mapping[str, Adoption]:
        """The containers dbstate took over (policy.adopt: in-place), by resource key."""
        ...

    def record_adoption(self, adopted: Adoption) -> None: ...

    def suspensions(self) -> Mapping[str, str]:
        """Instances suspended with `dbstate suspend`: key -> who and why."""
        ...

    def mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None: ...

    def begin_pass(
        self,
        command: str,
        revision: str | None,
        dirty: bool | None,
        trigger: str | None = None,
        started: float | None = None,
    ) -> int: ...

    def record_findings(self, pass_id: int, findings: Iterable[plan.Finding]) -> None: ...

    def record_outcome(self, pass_id: int, outcome: plan.Outcome) -> None: ...

    def finish_pass(self, pass_id: int, changes: int, failed: int, findings: int, errors: int) -> None: ...

    def durations(self) -> Mapping[tuple[str, str], Sequence[float]]:
        """How long successful changes took, oldest first: per (action, "Kind/name"), and per (action, "")."""
        ...

    def record_failed_pass(self, command: str, trigger: str | None, started: float, error: str) -> None:
        """A pass that could not run at all (its engine unreachable, its desired state unreadable): said in the
        history, so that status and the web view show this engine's trouble beside the others' passes."""
        ...

    def set_overview(self, body: Mapping[str, object]) -> None:
        """What the web view shows of the last pass (core/overview.py)."""
        ...

    def prune(self, before: float) -> int:
        """Retention: forget the passes (with their changes and findings) that started before `before`, never the
        newest one nor a fact that protects data; how many."""
        ...

    def set_resources(self, rows: Iterable[plan.ResourceStatus]) -> None: ...

    def record_probes(self, results: Iterable[ProbeResult], keep: Iterable[str]) -> dict[str, int]:
        """Each probe of this pass; returns the consecutive failures per instance, this probe included."""
        ...


class Facts(Protocol):
    """The facts that protect data, kept outside the state database too (on the engine), so that losing the state
    database never makes a lost volume look new, nor an adopted database look like a stranger."""

    def seen_volumes(self) -> Mapping[str, str | None]: ...

    def mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None: ...

    def adoptions(self) -> Mapping[str, Adoption]: ...

    def record_adoption(self, adopted: Adoption) -> None: ...

    def forget_gone(self, present: Collection[str]) -> list[str]:
        """Collect the adoption markers of containers that are gone (never a marker that protects data)."""
        ...


class LeaseHolder(Protocol):
    @property
    def holder(self) -> str: ...

    @property
    def expires(self) -> float:
        """Wall-clock time."""
        ...


class Lease(Protocol):
    """One writer per engine."""

    holder: str

    def hold(self) -> LeaseHolder | None:
        """Acquire or renew: None when we hold the lease, else who does."""
        ...

    def held(self) -> bool:
        """Whether this controller may act now, by its own clock (no engine call)."""
        ...

    def release(self) -> None: ...


class Shell(Protocol):
    """A database's own tools, run in its container (`docker exec`) or in a throw-away container: credentials in the
    exec's environment, never on a command line."""

    def stream(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> Iterator[bytes]:
        """stdout as it comes; raises `ExecFailed` after the last chunk when the tool exits non-zero."""
        ...

    def run(
        self,
        container: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        user: str = "",
        stdin: Iterable[bytes] | None = None,
        mutating: bool = False,
    ) -> Ran: ...

    def put_file(self, container: str, directory: str, name: str, chunks: Iterable[bytes], size: int) -> None: ...

    def scratch(
        self, image: str, env: Mapping[str, str], volume: str | None = None, target: str | None = None
    ) -> contextlib.AbstractContextManager[str]: ...

    def spawn(self, container: str, argv: Sequence[str], env: Mapping[str, str], user: str = "") -> None:
        """Start a tool in the container and do not wait for it (work that may run while the server serves)."""
        ...

    def run_once(
        self,
        image: str,
        mounts: Sequence[tuple[str, str, bool]],
        script: str,
        env: Mapping[str, str] | None = None,
        volumes_from: Sequence[str] = (),
    ) -> tuple[int, str]:
        """`script` in a throw-away container of `image` without a network, with (source, target, read-only) mounts,
        `env` (no secret) and the volumes of the `volumes_from` containers (`NAME:ro`)."""
        ...

    def toolbox(
        self, image: str, target: str, script: str, env: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[tuple[str, str]]:
        """`script` run in a throw-away container of `image` that keeps a fresh volume at `target` for the helpers
        after it (`volumes_from`); the container's name and the last line of the script's output while the block
        runs, removed with its volume afterwards. Raises `ExecFailed` with the output when the script fails."""
        ...

    def helpers(self) -> list[tuple[str, bool, tuple[str, ...]]]:
        """The throw-away containers still there (a killed process leaves them): name, running, what each mounts
        (volumes' names, host paths)."""
        ...

    def finish_helper(self, name: str) -> None:
        """A leftover helper waited for while it runs (it may be writing a volume), then removed."""
        ...

    def logs(self, container: str) -> str: ...

    def running(self, container: str) -> bool: ...


class BackupStore(Protocol):
    """Where backups are kept: a compressed file and a manifest each."""

    def new_id(self, instance: str, when: float) -> str: ...

    def writing(self, instance: str, ident: str, fmt: str) -> contextlib.AbstractContextManager[BackupFile]: ...

    def save(self, manifest: Manifest) -> Manifest:
        """Writes it signed, and returns it as written."""
        ...

    def manifests(self, instance: str | None = None) -> list[Manifest]: ...

    def get(self, ident: str) -> Manifest: ...

    def check(self, manifest: Manifest) -> None:
        """Raises `BackupError` unless the file has the manifest's size and sha256."""
        ...

    def read(self, manifest: Manifest) -> Iterator[bytes]: ...

    def prune(self, instance: str, keep: int) -> list[str]: ...


class BackupFile(Protocol):
    raw_bytes: int
    size_bytes: int

    def write(self, chunk: bytes) -> None: ...

    def finish(self) -> str:
        """Complete the file; its sha256."""
        ...


class DataGuard(Protocol):
    """What protects data around a change (engine/backing.py): a backup before a destructive one, and the
    dump-restore upgrade across major versions. Each raises `BackupError` and then nothing was changed."""

    def before(self, change: plan.Change) -> None: ...

    def after(self, change: plan.Change) -> None:
        """Once the change is done: what the engine's own upgrade step asks (MariaDB's mariadb-upgrade)."""
        ...

    def upgrade(self, change: plan.Change) -> None: ...

    def monitoring_login(self, exporter: spec.Exporter) -> None:
        """The exporter's least-privileged login made, or its password set, through the database's own client in
        its instance's container (the server is waited for); before the exporter's container is made."""
        ...


class Notifier(Protocol):
    """Where notifications go (adapters/notify.py: any Apprise URL); `send` raises `DbstateError` when it failed."""

    name: str  # how logs name it: never its URL, which may hold a token

    def send(self, title: str, body: str) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The clock of the machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()
