"""Recognising a database container that nobody declared: by its image's name, or by the port it exposes (each engine
module says its words and its port: core/databases)."""

from __future__ import annotations

from controller.core import databases, live, spec
from controller.core.databases import Database


def database_ports() -> dict[int, Database]:
    """The port each engine's images listen on; where two share one, the first module (MariaDB before MySQL, Redis
    before Valkey)."""
    out: dict[int, Database] = {}
    for d in databases.every():
        out.setdefault(d.port, d)
    return out


DATABASE_PORTS = database_ports()


def recognised(c: live.Container) -> Database | None:
    """The engine a container looks like, by its image's name or the ports it exposes, or None."""
    image = c.image.lower().rsplit("/", 1)[-1]
    for d in databases.every():
        if any(word in image for word in d.image_words):
            return d
    for p in c.ports:
        if p.container_port in DATABASE_PORTS:
            return DATABASE_PORTS[p.container_port]
    return None


def looks_like_database(c: live.Container) -> str | None:
    """The name of the engine a container looks like, or None."""
    found = recognised(c)
    return found.engine.value if found is not None else None


def engine_of(c: live.Container, declared: spec.DatabaseInstance | None) -> spec.Engine | None:
    """The engine of a container: what it is declared as, or what it looks like."""
    if declared is not None:
        return declared.spec.engine
    found = recognised(c)
    return found.engine if found is not None else None
