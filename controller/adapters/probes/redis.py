"""Redis through redis-py: version, and, when a password is declared, that an unauthenticated command is refused.

One connection, no client object: PING before logging in (refused with NOAUTH when a password is required), then
AUTH with the declared password, then INFO server. A probe asks once: no retries, no CLIENT SETINFO (redis-py's
defaults cost seconds on a refused login and 2 ms of CPU per client reading its own package metadata).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis import connection as _connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from controller.adapters.probes import ProbeResult, ProbeTarget, unreachable
from controller.core import databases
from controller.core.databases.redis import Redis
from controller.core.secrets import reveal

# what AUTH answers on a server without requirepass (older servers: NOT_SET)
SERVER_HAS_NONE = "without any password configured"
NOT_SET = "no password is set"
ANSWERS_WITHOUT = "a password is declared but the server answers without one (no requirepass)"
HAS_NONE = "a password is declared but the server has none (no requirepass)"
Connection: Any = _connection.Connection  # untyped in redis-py


def probe(target: ProbeTarget, address: str, timeout: float) -> ProbeResult:
    password = reveal(target.password) if target.password else None
    name = target.name
    t0 = time.perf_counter()
    conn = Connection(
        host=address,
        port=6379,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        driver_info=None,
    )
    weak: list[str] = []
    try:
        conn.connect()
        try:
            conn.send_command("PING")
            conn.read_response()
            anonymous = True
        except redis.AuthenticationError:
            anonymous = False  # NOAUTH: a password is required, as it must be when one is declared
        if password is not None:
            try:
                conn.send_command("AUTH", password)
                conn.read_response()
                if anonymous:
                    weak.append(ANSWERS_WITHOUT)
            except redis.AuthenticationError as e:
                if SERVER_HAS_NONE not in str(e) and NOT_SET not in str(e):
                    raise
                weak.append(HAS_NONE)
        elif not anonymous:
            raise redis.AuthenticationError("the server requires a password, and none is declared")
        rtt = (time.perf_counter() - t0) * 1000
        conn.send_command("INFO", "server")
        info = conn.read_response()
    except redis.RedisError as e:
        return unreachable(target, address, t0, e, password or "")
    finally:
        conn.disconnect()
    text = info.decode() if isinstance(info, bytes) else str(info)
    db = databases.of(target.engine)
    version = db.version_from_info(text) if isinstance(db, Redis) else ""
    return ProbeResult(name, address, True, version or None, rtt, auth_weak=tuple(weak))
