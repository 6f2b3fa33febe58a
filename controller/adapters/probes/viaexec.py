"""Probes that need no route to the database: the engine's own client run in the instance's container (`docker exec`)
logs in over TCP to 127.0.0.1 with the declared auth (the same path a consumer's login takes, not the container's
local socket) and asks what the direct probes ask; the password travels in the exec's environment, never its command
line. The rules that turn answers into weaknesses are the direct probes' own (postgres.weaknesses, mariadb's account
checks, redis's requirepass checks), so both routes report the same facts."""

from __future__ import annotations

import time

from controller.adapters.probes import ProbeResult, ProbeTarget, mariadb, postgres, redis
from controller.adapters.shell import DockerShell
from controller.core import databases, errors
from controller.core.databases.mariadb import MARIADB_CLIENT
from controller.core.databases.redis import Redis
from controller.core.secrets import reveal


def probe(shell: DockerShell, container: str, target: ProbeTarget, timeout: float) -> ProbeResult:
    t0 = time.perf_counter()
    address = f"exec:{container}"
    try:
        db = databases.of(target.engine)
        if db.family == "postgres":
            return _postgres(shell, container, target, timeout, address, t0)
        if db.family == "mysql":
            return _mariadb(shell, container, target, timeout, address, t0)
        assert isinstance(db, Redis)
        return _redis(shell, container, target, db, address, t0)
    except errors.DbstateError as e:
        return _down(target, address, t0, str(e))


def _down(target: ProbeTarget, address: str, t0: float, why: str) -> ProbeResult:
    password = reveal(target.password) if target.password else ""
    text = " ".join(why.split())[:300]
    if password:
        text = text.replace(password, "***")
    return ProbeResult(target.name, address, False, rtt_ms=(time.perf_counter() - t0) * 1000, error=text)


def _postgres(shell: DockerShell, c: str, target: ProbeTarget, timeout: float, address: str, t0: float) -> ProbeResult:
    env = {
        "PGPASSWORD": reveal(target.password) if target.password else "",
        "PGCONNECT_TIMEOUT": str(max(1, int(timeout))),
        "PGOPTIONS": f"-c statement_timeout={int(timeout * 1000)}",
    }
    base = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", target.user or "postgres"]
    base += ["-d", target.database or target.user or "postgres", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"]
    ran = shell.run(c, [*base, "-c", postgres.VERSION_QUERY], env, user="postgres")
    if ran.code != 0:
        return _down(
            target, address, t0, f"psql: {ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else ran.code}"
        )
    rtt = (time.perf_counter() - t0) * 1000
    version, encryption = ran.stdout.decode().strip().split("\t")[:2]
    version = version.split()[0]
    rules_ran = shell.run(c, [*base, "-c", postgres.RULES_QUERY], env, user="postgres")
    rules = None
    if rules_ran.code == 0:
        rules = [
            (int(line), kind, method)
            for line, kind, method in (row.split("\t") for row in rules_ran.stdout.decode().splitlines() if row)
        ]
    weak = postgres.weaknesses(target.method, encryption, rules, "InsufficientPrivilege")
    return ProbeResult(
        target.name, address, True, version, rtt, auth_weak=tuple(weak), facts={"password_encryption": encryption}
    )


def _mariadb(shell: DockerShell, c: str, target: ProbeTarget, timeout: float, address: str, t0: float) -> ProbeResult:
    env = {"MYSQL_PWD": reveal(target.password) if target.password else ""}
    base = ["sh", "-c", MARIADB_CLIENT, "sh", "-h", "127.0.0.1", "-P", "3306", "-u", target.user or "root"]
    base += [f"--connect-timeout={max(1, int(timeout))}", "-N", "-B"]
    if target.database:
        base += ["-D", target.database]
    ran = shell.run(c, [*base, "-e", "SELECT VERSION()"], env)
    if ran.code != 0:
        return _down(target, address, t0, ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else "no answer")
    rtt = (time.perf_counter() - t0) * 1000
    raw = ran.stdout.decode().strip()
    version = mariadb.announced_version(raw) or raw
    weak: list[str] = []
    accounts = shell.run(c, [*base, "-e", mariadb.ACCOUNTS_QUERY], env)
    if accounts.code == 0:
        note = mariadb.CHECKED
        for row in accounts.stdout.decode().splitlines():
            user, _, host = row.partition("\t")
            weak.append(mariadb.no_password(user, host))
    else:
        note = mariadb.NOT_CHECKED
        root = [
            "sh",
            "-c",
            MARIADB_CLIENT,
            "sh",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-e",
            "SELECT 1",
        ]
        if shell.run(c, root, {"MYSQL_PWD": ""}).code == 0:
            weak.append(mariadb.EMPTY_ROOT)
    return ProbeResult(
        target.name, address, True, version, rtt, auth_weak=tuple(weak), facts={"server": raw, "accounts": note}
    )


def _redis(shell: DockerShell, c: str, target: ProbeTarget, db: Redis, address: str, t0: float) -> ProbeResult:
    cli = [db.tool, "--no-auth-warning", "-h", "127.0.0.1", "-p", str(db.port)]
    ping = shell.run(c, [*cli, "PING"], {})
    if ping.code != 0 and not ping.stdout:
        return _down(target, address, t0, f"{db.tool}: {ping.stderr.strip() or ping.code}")
    anonymous = ping.stdout.decode().strip() == "PONG"
    weak: list[str] = []
    password = reveal(target.password) if target.password else None
    if password is not None:
        auth = shell.run(c, [*cli, "INFO", "server"], db.auth_env(password))
        answer = (auth.stdout.decode() + auth.stderr).strip()
        if redis.SERVER_HAS_NONE in answer or redis.NOT_SET in answer:
            weak.append(redis.HAS_NONE)
            info = shell.run(c, [*cli, "INFO", "server"], {})
        elif "redis_version:" not in answer:
            return _down(target, address, t0, f"AuthenticationError: {answer.splitlines()[0] if answer else 'refused'}")
        else:
            info = auth
            if anonymous:
                weak.append(redis.ANSWERS_WITHOUT)
    elif not anonymous:
        return _down(target, address, t0, "AuthenticationError: the server requires a password, and none is declared")
    else:
        info = shell.run(c, [*cli, "INFO", "server"], {})
    rtt = (time.perf_counter() - t0) * 1000
    text = info.stdout.decode(errors="replace")
    version = db.version_from_info(text)
    return ProbeResult(target.name, address, True, version or None, rtt, auth_weak=tuple(weak))
