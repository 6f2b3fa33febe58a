"""PostgreSQL through psycopg: version, password_encryption, and the host rules in force (pg_hba_file_rules)."""

from __future__ import annotations

import time

import psycopg

from controller.adapters.probes import ProbeResult, ProbeTarget, unreachable
from controller.core.secrets import reveal

# weakest first: a rule whose method comes before the declared one is weaker
STRENGTH = ["trust", "password", "md5", "scram-sha-256"]


VERSION_QUERY = "SELECT current_setting('server_version'), current_setting('password_encryption')"
RULES_QUERY = "SELECT line_number, type, auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number"


def weaknesses(
    declared: str, encryption: str, rules: list[tuple[int, str, str]] | None, unreadable: str = ""
) -> list[str]:
    """What is weaker than the declared method: password_encryption, and the host rules in force (None: they could
    not be read, `unreadable` says why). Said once here for the direct probe and the probe through the engine."""
    weak: list[str] = []
    if declared in STRENGTH and encryption in STRENGTH and STRENGTH.index(encryption) < STRENGTH.index(declared):
        weak.append(f"password_encryption is {encryption}, weaker than the declared {declared}")
    if rules is None:
        weak.append(f"cannot read pg_hba_file_rules ({unreadable}): the probe user needs superuser")
        return weak
    for line, kind, method in rules:
        # local rules are unix-socket connections inside the container, which the official image trusts
        if kind == "local" or method not in STRENGTH or declared not in STRENGTH:
            continue
        if STRENGTH.index(method) < STRENGTH.index(declared):
            weak.append(
                f"pg_hba.conf line {line}: {kind} connections use {method}, weaker than the declared {declared}"
            )
    return weak


def probe(target: ProbeTarget, address: str, timeout: float) -> ProbeResult:
    password = reveal(target.password) if target.password else ""
    name = target.name
    t0 = time.perf_counter()
    try:
        conn = psycopg.connect(
            host=address,
            port=5432,
            user=target.user or "postgres",
            password=password,
            dbname=target.database or target.user or "postgres",
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
            options=f"-c statement_timeout={int(timeout * 1000)}",
        )
    except psycopg.Error as e:
        return unreachable(target, address, t0, e, password)
    with conn:
        rtt = (time.perf_counter() - t0) * 1000
        row = conn.execute(VERSION_QUERY).fetchone()
        if row is None:  # a server that answers a SELECT with no row is not one to trust
            raise psycopg.ProgrammingError("no answer to the version query")
        version, encryption, why = str(row[0]).split()[0], str(row[1]), ""
        try:
            rules: list[tuple[int, str, str]] | None = [
                (int(a), str(b), str(c)) for a, b, c in conn.execute(RULES_QUERY).fetchall()
            ]
        except psycopg.Error as e:
            rules, why = None, type(e).__name__
        weak = weaknesses(target.method, encryption, rules, why)
    return ProbeResult(
        name, address, True, version, rtt, auth_weak=tuple(weak), facts={"password_encryption": encryption}
    )
