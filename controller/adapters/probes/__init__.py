"""Health probes of the database servers themselves: reachable, the version the server reports, the round trip,
and the security facts each engine can show. One module per client library; `probe()` picks by engine.

A probe connects with the instance's declared auth to an address reachable from where dbstate runs (the container's
address on one of its networks), with short timeouts, and never raises: a failure is a result. Messages never carry
a password (the client libraries' error texts are reduced to their kind and the server's refusal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.core import spec
from controller.core.checks import versions_agree


@dataclass(frozen=True)
class ProbeResult:
    instance: str
    address: str
    reachable: bool
    version: str | None = None  # as the server reports it, e.g. "15.20", "10.11.19", "7.0.15"
    rtt_ms: float | None = None
    error: str | None = None  # why it is not reachable or not authenticated, without secrets
    auth_weak: tuple[str, ...] = ()  # one message per weakness found
    facts: dict[str, str] = field(default_factory=dict)

    def version_mismatch(self, declared: str) -> bool:
        return self.version is not None and not versions_agree(declared, self.version)


Prober = Callable[[spec.DatabaseInstance, str, float], ProbeResult]


def probe(instance: spec.DatabaseInstance, address: str, timeout: float = 2.0) -> ProbeResult:
    from controller.adapters.probes import mariadb, postgres, redis

    engines: dict[spec.Engine, Prober] = {
        spec.Engine.POSTGRES: postgres.probe,
        spec.Engine.MARIADB: mariadb.probe,
        spec.Engine.MYSQL: mariadb.probe,
        spec.Engine.REDIS: redis.probe,
    }
    t0 = time.perf_counter()
    try:
        return engines[instance.spec.engine](instance, address, timeout)
    except Exception as e:  # a probe never raises: an unexpected failure is a result too
        return ProbeResult(
            instance.metadata.name,
            address,
            False,
            rtt_ms=(time.perf_counter() - t0) * 1000,
            error=f"probe failed: {type(e).__name__}",
        )


def unreachable(
    instance: spec.DatabaseInstance, address: str, started: float, exc: BaseException, secret: str
) -> ProbeResult:
    """The result of a probe that could not connect or log in, its error scrubbed of `secret`."""
    return ProbeResult(
        instance.metadata.name,
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
