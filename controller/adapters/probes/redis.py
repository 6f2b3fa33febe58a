"""Redis through redis-py: version, and, when a password is declared, that an unauthenticated command is refused."""

from __future__ import annotations

import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from controller.adapters.probes import ProbeResult, ProbeTarget, unreachable
from controller.core.secrets import reveal


def _client(address: str, timeout: float, password: str | None = None) -> redis.Redis:
    # redis-py retries a refused login with backoff by default (seconds per probe): a probe asks once
    return redis.Redis(
        host=address,
        port=6379,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def probe(target: ProbeTarget, address: str, timeout: float) -> ProbeResult:
    password = reveal(target.password) if target.password else None
    secret = password or ""  # what every error text is scrubbed of
    name = target.name
    t0 = time.perf_counter()
    client = _client(address, timeout, password)
    weak: list[str] = []
    try:
        try:
            client.ping()
        except (redis.AuthenticationError, redis.ResponseError) as e:
            if not password or "without any password configured" not in str(e):
                raise
            client.close()  # a password is declared, the server has none: reachable, and weak
            client = _client(address, timeout)
            client.ping()
            weak.append("a password is declared but the server has none (no requirepass)")
            password = None
        rtt = (time.perf_counter() - t0) * 1000
        version = str(client.info("server").get("redis_version", ""))
    except redis.RedisError as e:
        return unreachable(target, address, t0, e, secret)
    finally:
        client.close()
    if password:
        anonymous = _client(address, timeout)
        try:
            anonymous.ping()
            weak.append("a password is declared but the server answers without one (no requirepass)")
        except redis.AuthenticationError:
            pass  # refused, as it must be
        except redis.ResponseError as e:
            if "NOAUTH" not in str(e):
                weak.append(f"unexpected answer without a password: {type(e).__name__}")
        finally:
            anonymous.close()
    return ProbeResult(name, address, True, version, rtt, auth_weak=tuple(weak))
