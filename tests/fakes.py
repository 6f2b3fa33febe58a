"""In-memory stand-ins for the engine's ports, shipped once for the unit tests of the engine (never for the tests that
show a capability works: those run against the real engine, under tests/e2e/).

- `RecordingRuntime`: a `Runtime` that records its calls and their concurrency (the apply scheduler's tests);
- `FakeEngine`: the same, plus an `Observer` over dictionaries with the Docker rules the diff relies on (names are
  unique, an attachment carries aliases, a container has a state), and a hook to make a call fail.
- `TextSource`: a `DesiredSource` over YAML text.
- `FakeClock`, `FakeProber`; the in-memory store is the engine's own `MemoryHistory`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.adapters import desired
from controller.core import errors, live, spec
from controller.core.health import ProbeResult, ProbeTarget
from controller.core.labels import VOLUME_ID
from controller.core.revision import Desired, Revision
from controller.engine.history import MemoryHistory

__all__ = ["FakeClock", "FakeEngine", "FakeProber", "MemoryHistory", "RecordingRuntime", "TextSource"]

ENGINE = live.EngineInfo("fake://engine", "0.0-fake", "1.41")


@dataclass
class _Container:
    name: str
    image: str
    labels: dict[str, str]
    networks: dict[str, tuple[str, ...]]
    volumes: dict[str, str]
    env: dict[str, str] = field(repr=False, default_factory=dict)
    state: str = "created"


class RecordingRuntime:
    """A `Runtime` that only records its calls, (operation, target), and how many ran at once; a call whose target
    is in `fail` raises a transient engine error, and each call takes `delay` seconds. For the apply scheduler."""

    def __init__(self, fail: Collection[str] = (), delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = set(fail)
        self.delay = delay
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def _call(self, op: str, target: str) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append((op, target))
        try:
            time.sleep(self.delay)
            if target in self.fail:
                raise errors.EngineTransient(f"{op} {target}: engine error 500")
        finally:
            with self.lock:
                self.active -= 1

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        self._call("create_network", name)

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        self._call("create_volume", name)

    def volume_identity(self, name: str) -> str | None:
        return "same"  # a read: not recorded, and every volume is there and stays itself

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
        self._call("create_container", name)

    def start(self, name: str) -> None:
        self._call("start", name)

    def stop(self, name: str, timeout: int) -> None:
        self._call("stop", name)

    def rename(self, name: str, new_name: str) -> None:
        self._call("rename", f"{name}->{new_name}")

    def make_inert(self, name: str, labels: Mapping[str, str]) -> None:
        self._call("make_inert", name)

    def remove_container(self, name: str) -> None:
        self._call("remove", name)

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        self._call("connect", f"{container}@{network}")

    def disconnect(self, container: str, network: str) -> None:
        self._call("disconnect", f"{container}@{network}")

    def remove_network(self, name: str) -> None:
        self._call("remove_network", name)

    def pause(self, name: str) -> bool:
        self._call("pause", name)
        return True

    def unpause(self, name: str) -> None:
        self._call("unpause", name)


class FakeEngine(RecordingRuntime):
    """An engine in memory: what the runtime calls create, the observer sees, with Docker's rules (names are unique,
    a missing named volume is created with its container, a stopped container has no address). `fail(method, exc)`
    makes the next call of a method raise `exc`; `kill(name)` is drift behind dbstate's back."""

    host = ENGINE.host

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, _Container] = {}
        self.networks: dict[str, live.Network] = {}
        self.volumes: dict[str, live.Volume] = {}
        self._failures: dict[str, list[BaseException]] = {}
        self._ids = itertools.count(1)

    def fail_next(self, method: str, exc: BaseException, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([exc] * times)

    def _maybe_fail(self, method: str) -> None:
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _call(self, op: str, target: str) -> None:
        self._maybe_fail(op)
        super()._call(op, target)

    def volume_identity(self, name: str) -> str | None:
        self._maybe_fail("volume_identity")
        v = self.volumes.get(name)
        return v.identity if v is not None else None

    def _get(self, name: str) -> _Container:
        if name not in self.containers:
            raise errors.EnginePermanent(f"no such container: {name}")
        return self.containers[name]

    def observe(self, inspect: Collection[str] = (), *, inspect_all: bool = False) -> live.LiveState:
        self._maybe_fail("observe")
        containers = tuple(
            live.Container(
                id=c.name,
                name=c.name,
                image=c.image,
                state=c.state,
                labels=dict(c.labels),
                networks=tuple(
                    live.Attachment(n, aliases, f"10.0.0.{i + 2}" if c.state == "running" else None)
                    for i, (n, aliases) in enumerate(sorted(c.networks.items()))
                ),
                mounts=tuple(live.Mount("volume", s, t) for s, t in c.volumes.items()),
                env=dict(c.env) if inspect_all or c.name in inspect else None,
            )
            for c in self.containers.values()
        )
        return live.LiveState(ENGINE, containers, tuple(self.networks.values()), tuple(self.volumes.values()))

    def create_network(self, name: str, driver: str, internal: bool, labels: Mapping[str, str]) -> None:
        super().create_network(name, driver, internal, labels)
        self.networks[name] = live.Network(f"n{next(self._ids)}", name, driver, internal, dict(labels))

    def create_volume(self, name: str, driver: str, labels: Mapping[str, str]) -> None:
        super().create_volume(name, driver, labels)
        # as the Docker adapter does: a random id, so that a volume made again is another volume
        self.volumes[name] = live.Volume(name, driver, {**labels, VOLUME_ID: f"v{next(self._ids)}"})

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
        super().create_container(name, image, env, command, labels, networks, volumes, ports, restart_policy)
        if name in self.containers:
            raise errors.EnginePermanent(f"Conflict: the container name {name} is already in use")
        for v in volumes:  # Docker creates a missing named volume on create
            self.volumes.setdefault(v, live.Volume(v, "local", {}))
        nets = {n: tuple(a) for n, a in networks.items()}
        self.containers[name] = _Container(name, image, dict(labels), nets, dict(volumes), dict(env))

    def start(self, name: str) -> None:
        super().start(name)
        self._get(name).state = "running"

    def stop(self, name: str, timeout: int) -> None:
        super().stop(name, timeout)
        self._get(name).state = "exited"

    def rename(self, name: str, new_name: str) -> None:
        super().rename(name, new_name)
        c = self.containers.pop(name)
        self.containers[new_name] = replace(c, name=new_name)

    def remove_container(self, name: str) -> None:
        super().remove_container(name)
        self.containers.pop(name, None)

    def connect(self, container: str, network: str, aliases: Sequence[str], reconnect: bool) -> None:
        super().connect(container, network, aliases, reconnect)
        self._get(container).networks[network] = tuple(aliases)

    def disconnect(self, container: str, network: str) -> None:
        super().disconnect(container, network)
        self._get(container).networks.pop(network, None)

    def pause(self, name: str) -> bool:
        c = self.containers.get(name)
        if c is None or c.state != "running":
            return False
        super().pause(name)
        c.state = "paused"
        return True

    def unpause(self, name: str) -> None:
        super().unpause(name)
        if name in self.containers and self.containers[name].state == "paused":
            self.containers[name].state = "running"

    def kill(self, name: str) -> None:
        self.containers[name].state = "exited"


class TextSource:
    """A desired state from YAML text; `text` may be changed between passes (a new commit)."""

    def __init__(self, text: str, variables: Mapping[str, str] | None = None, commit: str | None = None) -> None:
        self.text = text
        self.variables = dict(variables or {})
        self.commit = commit

    def load(self) -> Desired:
        return Desired(Revision(self.commit, False), desired.load_text(self.text, "state.yaml", self.variables))


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProber:
    """Answers each instance as `answer(name)` says (default: up, version 7.0.15)."""

    def __init__(self, answer: Callable[[str], ProbeResult] | None = None) -> None:
        self.answer = answer or (lambda name: ProbeResult(name, "10.0.0.2", True, version="7.0.15", rtt_ms=1.0))
        self.probed: list[str] = []

    def probe_all(
        self,
        instances: Iterable[spec.DatabaseInstance],
        observed: live.LiveState,
        *,
        timeout: float,
        internal: frozenset[str],
    ) -> dict[str, ProbeResult]:
        names = [i.metadata.name for i in instances]
        self.probed.extend(names)
        return {n: self.answer(n) for n in names}

    def probe_many(
        self, jobs: Sequence[tuple[str, spec.DatabaseInstance | ProbeTarget, str]], timeout: float
    ) -> dict[str, ProbeResult]:
        return {key: self.answer(key) for key, _, _ in jobs}

    def handshake(self, address: str, timeout: float) -> str | None:
        return None
