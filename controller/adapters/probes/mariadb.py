"""MariaDB and MySQL through pymysql: version, accounts without a password, and root refusing an empty one."""

from __future__ import annotations

import re
import time

import pymysql

from controller.adapters.probes import ProbeResult, unreachable
from controller.core import spec
from controller.core.secrets import reveal


def probe(instance: spec.DatabaseInstance, address: str, timeout: float) -> ProbeResult:
    auth = instance.spec.auth
    password = reveal(auth.password) if auth.password else ""
    name = instance.metadata.name
    t0 = time.perf_counter()
    try:
        conn = pymysql.connect(
            host=address,
            port=3306,
            user=auth.user or "root",
            password=password,
            database=auth.database,
            connect_timeout=timeout,
            read_timeout=timeout,
        )
    except pymysql.MySQLError as e:
        return unreachable(instance, address, t0, e, password)
    weak: list[str] = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        raw = str(cur.fetchone()[0])
        rtt = (time.perf_counter() - t0) * 1000
        m = re.match(r"(\d+(?:\.\d+)*)", raw)
        version = m.group(1) if m else raw
        try:
            cur.execute(
                "SELECT user, host FROM mysql.user WHERE COALESCE(authentication_string, '') = '' "
                "AND plugin NOT IN ('unix_socket', 'auth_socket', 'gssapi') AND user <> 'mariadb.sys'"
            )
            for user, host in cur.fetchall():
                weak.append(f"account '{user}'@'{host}' has no password")
        except pymysql.MySQLError:
            # the declared user may not read mysql.user: say so; the empty-root check below still runs
            facts_note = "accounts not checked: the probe user cannot read mysql.user"
        else:
            facts_note = "accounts checked"
    try:
        pymysql.connect(host=address, port=3306, user="root", password="", connect_timeout=timeout).close()
        weak.append("root accepts an empty password")
    except pymysql.MySQLError:
        pass  # refused, as it must be
    return ProbeResult(
        name, address, True, version, rtt, auth_weak=tuple(weak), facts={"server": raw, "accounts": facts_note}
    )
