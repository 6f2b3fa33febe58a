"""Addresses as settings and the engine write them: the host a connection setting names, and whether a published
port listens on every interface. Said once here, for the diff, the checks and the audit."""

from __future__ import annotations

import re

from controller.core.text import printable

EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognising, not binding


def host_of(value: str) -> str:
    """The host a connection setting names: `postgres`, `postgres:5432`, or a URL's host. Never a part of its
    userinfo: everything up to the last `@` is dropped first, since a password may hold `@`, `#`, `/` or `?`."""
    if "://" in value:
        rest = value.split("://", 1)[1].rpartition("@")[2]
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        return printable(_host_port(authority).lower())
    return printable(_host_port(value.split("/", 1)[0]))


def _host_port(host: str) -> str:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> the host."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def every_interface(host_ip: str | None) -> bool:
    """Whether a publish on `host_ip` listens on every interface: empty, 0.0.0.0, `::` or `[::]`. None (exposed,
    not published) does not."""
    if host_ip is None:
        return False
    return host_ip.strip("[]") in EVERY_INTERFACE


def endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with a Docker engine's address (`unix:///path`, `tcp://HOST[:PORT]`, `ssh://[USER@]HOST[:PORT]`),
    said without its value (it may hold a password); None when it is well formed."""
    if endpoint.startswith("unix://"):
        return None if endpoint.startswith("unix:///") and len(endpoint) > len("unix:///") else "unix:///PATH"
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ssh"):
        return "unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"
    where = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    if where.startswith("["):
        end = where.find("]")
        if end < 0:
            return "an IPv6 host is written in [brackets]"
        host, after = where[1:end], where[end + 1 :]
        if after and not after.startswith(":"):
            return "its host or port cannot be read"
        port = after[1:] if after else None
    else:
        host, colon, port_text = where.partition(":")
        if ":" in port_text:
            return "an IPv6 host is written in [brackets]"
        port = port_text if colon else None
    if not host:
        return "it names no host"
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return "a port is a number from 1 to 65535"
    return None
