"""Health probes of the database servers themselves: reachable, the version the server reports, the round trip,
and the security facts each engine can show. One module per client library; `probe()` picks by engine.

A probe connects with the instance's declared auth to an address reachable from where dbstate runs (the container's
address on one of its networks), with short timeouts, and never raises: a failure is a result. Messages never carry
a password (the client libraries' error texts are reduced to their kind and the server's refusal).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from controller.core import databases, health, live, spec
from controller.core.health import ProbeResult, ProbeTarget
from controller.core.text import printable

if TYPE_CHECKING:
    from controller.adapters.shell import DockerShell

K = TypeVar("K")
__all__ = [
    "ProbeResult",
    "ProbeTarget",
    "Probes",
    "mariadb_handshake",
    "probe",
    "probe_all",
    "probe_many",
    "safe_error",
    "unreachable",
]

Prober = Callable[[ProbeTarget, str, float], ProbeResult]


def probe(target: spec.DatabaseInstance | ProbeTarget, address: str, timeout: float = 2.0) -> ProbeResult:
    if isinstance(target, spec.DatabaseInstance):
        target = ProbeTarget.of(target)
    t0 = time.perf_counter()
    try:
        return _printable(_prober(target.engine)(target, address, timeout))
    except Exception as e:  # a probe never raises: an unexpected failure is a result too
        return ProbeResult(
            target.name,
            address,
            False,
            rtt_ms=(time.perf_counter() - t0) * 1000,
            error=f"probe failed: {type(e).__name__}",
        )


def _printable(r: ProbeResult) -> ProbeResult:
    """What a server said (its version, its errors, its facts), with no control character left in it."""
    return dataclasses.replace(
        r,
        version=printable(r.version) if r.version is not None else None,
        error=printable(r.error) if r.error is not None else None,
        auth_weak=tuple(printable(w) for w in r.auth_weak),
        facts={printable(k): printable(v) for k, v in r.facts.items()},
    )


def _prober(engine: spec.Engine) -> Prober:
    """The probe of one engine's wire protocol (its module's family); only that client library is imported (a
    Redis-only host never loads psycopg)."""
    family = databases.of(engine).family
    if family == "postgres":
        from controller.adapters.probes import postgres

        return postgres.probe
    if family == "mysql":
        from controller.adapters.probes import mariadb

        return mariadb.probe
    from controller.adapters.probes import redis

    return redis.probe


def unreachable(target: ProbeTarget, address: str, started: float, exc: BaseException, secret: str) -> ProbeResult:
    """The result of a probe that could not connect or log in, its error scrubbed of `secret`."""
    return ProbeResult(
        target.name,
        address,
        False,
        rtt_ms=(time.perf_counter() - started) * 1000,
        error=safe_error(exc, (secret,)),
    )


def safe_error(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """An exception's text, one line, with every secret value replaced (servers may echo what they were sent)."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return f"{type(exc).__name__}: {text}"


def probe_all(
    instances: Iterable[spec.DatabaseInstance],
    observed: live.LiveState,
    *,
    timeout: float = 2.0,
    parallel: int = 8,
    internal: frozenset[str] = frozenset(),
) -> dict[str, ProbeResult]:
    """Probe every instance at once (a dead one costs its timeout, and only its own thread). An instance whose
    container is missing or not running fails at once, without touching the network."""
    todo: list[tuple[spec.DatabaseInstance, str]] = []
    out: dict[str, ProbeResult] = {}
    for inst in instances:
        name = inst.metadata.name
        c = observed.container(inst.container_name)
        address = health.probe_address(c, internal) if c is not None and c.state == "running" else None
        if c is None:
            out[name] = ProbeResult(name, "", False, error=f"no container {inst.container_name}")
        elif c.state != "running":
            out[name] = ProbeResult(name, "", False, error=f"container {c.name} is {c.state}")
        elif address is None:
            out[name] = ProbeResult(name, "", False, error=f"container {c.name} has no address on any network")
        else:
            todo.append((inst, address))
    found = probe_many([(inst.metadata.name, inst, address) for inst, address in todo], timeout, parallel)
    return out | found


def probe_many(
    jobs: Sequence[tuple[K, spec.DatabaseInstance | ProbeTarget, str]], timeout: float, parallel: int = 8
) -> dict[K, ProbeResult]:
    """(key, target, address) jobs, probed concurrently; results by key."""
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs))), thread_name_prefix="probe") as pool:
        results = list(pool.map(lambda job: probe(job[1], job[2], timeout), jobs))
    return {key: r for (key, _, _), r in zip(jobs, results, strict=True)}


def _running(observed: live.LiveState, inst: spec.DatabaseInstance) -> bool:
    c = observed.container(inst.container_name)
    return c is not None and c.state == "running"


# what a direct probe says when there is no route (no address, refused, timed out), not when the server refused us
_NO_ROUTE = (
    "has no address",
    "timeout",
    "timed out",
    "Connection refused",
    "No route",
    "unreachable",
    "ConnectionError",
)


def _no_route(r: ProbeResult) -> bool:
    return not r.reachable and any(w in (r.error or "") for w in _NO_ROUTE)


def mariadb_handshake(address: str, timeout: float) -> str | None:
    """The version a MariaDB/MySQL server announces before any login."""
    from controller.adapters.probes import mariadb

    version = mariadb.handshake_version(address, timeout)
    return printable(version) if version is not None else None


class Probes:
    """The `engine.ports.Prober` of the real servers: psycopg, pymysql and redis, imported on the first probe; with
    `via` exec (or auto, when the address cannot be reached) the engine's own client in the container
    (probes/viaexec.py) through `shell`."""

    def __init__(self, via: str = "direct", shell: DockerShell | None = None) -> None:
        self.via, self.shell = via, shell

    def probe_all(
        self,
        instances: Iterable[spec.DatabaseInstance],
        observed: live.LiveState,
        *,
        timeout: float,
        internal: frozenset[str],
    ) -> dict[str, ProbeResult]:
        if self.via == "direct" or self.shell is None:
            return probe_all(instances, observed, timeout=timeout, internal=internal)
        every = list(instances)
        running = {i.metadata.name: i for i in every if _running(observed, i)}
        if self.via == "exec":
            first: dict[str, ProbeResult] = {}
        else:
            first = probe_all(every, observed, timeout=timeout, internal=internal)
        again = [n for n in running if n not in first or _no_route(first[n])]
        # a missing or stopped container is said at once, without any network or exec
        out = dict(first) | probe_all([i for i in every if i.metadata.name not in running], observed)
        out.update(self._through_exec([running[n] for n in again], timeout))
        return out

    def _through_exec(self, instances: Sequence[spec.DatabaseInstance], timeout: float) -> dict[str, ProbeResult]:
        from controller.adapters.probes import viaexec

        assert self.shell is not None
        shell = self.shell
        if not instances:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(instances)), thread_name_prefix="probe-exec") as pool:
            found = list(
                pool.map(
                    lambda i: _printable(viaexec.probe(shell, i.container_name, ProbeTarget.of(i), timeout)), instances
                )
            )
        return {r.instance: r for r in found}

    def probe_many(
        self, jobs: Sequence[tuple[str, spec.DatabaseInstance | ProbeTarget, str]], timeout: float
    ) -> dict[str, ProbeResult]:
        return probe_many(jobs, timeout)

    def handshake(self, address: str, timeout: float) -> str | None:
        return mariadb_handshake(address, timeout)
