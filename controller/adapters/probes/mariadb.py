"""MariaDB and MySQL through pymysql: version, accounts without a password, and root refusing an empty one."""

from __future__ import annotations

import re
import socket
import time

import pymysql

from controller.adapters.probes import ProbeResult, ProbeTarget, unreachable
from controller.core.secrets import reveal

# accounts that log in without a password (socket and GSSAPI accounts authenticate otherwise)
ACCOUNTS_QUERY = (
    "SELECT user, host FROM mysql.user WHERE COALESCE(authentication_string, '') = '' "
    "AND plugin NOT IN ('unix_socket', 'auth_socket', 'gssapi') AND user <> 'mariadb.sys'"
)
CHECKED, NOT_CHECKED = "accounts checked", "accounts not checked: the probe user cannot read mysql.user"
EMPTY_ROOT = "root accepts an empty password"


def no_password(user: str, host: str) -> str:
    return f"account '{user}'@'{host}' has no password"


def probe(target: ProbeTarget, address: str, timeout: float) -> ProbeResult:
    password = reveal(target.password) if target.password else ""
    name = target.name
    t0 = time.perf_counter()
    try:
        conn = pymysql.connect(
            host=address,
            port=3306,
            user=target.user or "root",
            password=password,
            database=target.database,
            connect_timeout=timeout,
            read_timeout=timeout,
        )
    except pymysql.MySQLError as e:
        return unreachable(target, address, t0, e, password)
    weak: list[str] = []
    rtt = (time.perf_counter() - t0) * 1000
    # what the server announced in its greeting, e.g. "10.11.19-MariaDB-0+deb12u1"; MariaDB 10 prefixes "5.5.5-" for
    # old clients, which SELECT VERSION() (the probe through the engine) does not say: dropped, so both say the same
    raw = str(conn.get_server_info()).removeprefix("5.5.5-")
    with conn, conn.cursor() as cur:
        version = announced_version(raw) or raw
        try:
            cur.execute(ACCOUNTS_QUERY)
            weak += [no_password(str(user), str(host)) for user, host in cur.fetchall()]
        except pymysql.MySQLError:
            # the declared user may not read mysql.user: say so; the empty-root check below still runs
            facts_note = NOT_CHECKED
        else:
            facts_note = CHECKED
    if facts_note != CHECKED:  # else a root without a password was among the accounts listed above
        try:
            pymysql.connect(host=address, port=3306, user="root", password="", connect_timeout=timeout).close()
            weak.append(EMPTY_ROOT)
        except pymysql.MySQLError:
            pass  # refused, as it must be
    return ProbeResult(
        name, address, True, version, rtt, auth_weak=tuple(weak), facts={"server": raw, "accounts": facts_note}
    )


def handshake_version(address: str, timeout: float) -> str | None:
    """The version a MariaDB/MySQL server announces in its greeting, before any login (for servers whose
    credentials dbstate does not have)."""
    try:
        with socket.create_connection((address, 3306), timeout=timeout) as sock:
            head = sock.recv(4)
            if len(head) < 4:
                return None
            size = int.from_bytes(head[:3], "little")
            body = b""
            while len(body) < size:
                chunk = sock.recv(size - len(body))
                if not chunk:
                    break
                body += chunk
    except OSError:
        return None
    if not body or body[0] != 10:  # protocol 10; an error packet (0xff) says the host is refused
        return None
    raw = body[1 : body.find(b"\0", 1)].decode("ascii", "replace")
    return announced_version(raw)


def announced_version(announced: str) -> str | None:
    m = re.match(r"(?:5\.5\.5-)?(\d+(?:\.\d+)*)", announced)  # MariaDB 10 once announced "5.5.5-10.x"
    return m.group(1) if m else None
