"""Redis through redis-py: version, and, when a password is declared, that an unauthenticated command is refused."""

from __future__ import annotations

import time

import redis

from controller.adapters.probes import ProbeResult, unreachable
from controller.core import spec
from controller.core.secrets import reveal


def probe(instance: spec.DatabaseInstance, address: str, timeout: float) -> ProbeResult:
    auth = instance.spec.auth
    password = reveal(auth.password) if auth.password else None
    secret = password or ""  # what every error text is scrubbed of
    name = instance.metadata.name
    t0 = time.perf_counter()
    client = redis.Redis(
        host=address, port=6379, password=password, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    weak: list[str] = []
    try:
        try:
            client.ping()
        except (redis.AuthenticationError, redis.ResponseError) as e:
            if not password or "without any password configured" not in str(e):
                raise
            client.close()  # a password is declared, the server has none: reachable, and weak
            client = redis.Redis(host=address, port=6379, socket_timeout=timeout, socket_connect_timeout=timeout)
            client.ping()
            weak.append("a password is declared but the server has none (no requirepass)")
            password = None
        rtt = (time.perf_counter() - t0) * 1000
        version = str(client.info("server").get("redis_version", ""))
    except redis.RedisError as e:
        return unreachable(instance, address, t0, e, secret)
    finally:
        client.close()
    if password:
        anonymous = redis.Redis(host=address, port=6379, socket_timeout=timeout, socket_connect_timeout=timeout)
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
