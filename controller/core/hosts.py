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
    from urllib.parse import urlsplit

    if endpoint.startswith("unix://"):
        return None if endpoint.startswith("unix:///") and len(endpoint) > len("unix:///") else "unix:///PATH"
    if not endpoint.startswith(("tcp://", "ssh://")):
        return "unix:///PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return "its host or port cannot be read (a port is a number from 1 to 65535; an IPv6 host is in [brackets])"
    if not parts.hostname:
        return "it names no host"
    if port is not None and not 1 <= port <= 65535:
        return "a port is a number from 1 to 65535"
    if port is None and parts.netloc.rsplit("]", 1)[-1].endswith(":"):
        return "a port is a number from 1 to 65535"
    return None
