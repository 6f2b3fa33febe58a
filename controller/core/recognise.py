"""Recognising a database container that nobody declared: by its image's name, or by the port it exposes."""

from __future__ import annotations

from controller.core import live, spec

DATABASE_PORTS = {5432: "postgres", 3306: "mariadb/mysql", 6379: "redis"}
DATABASE_IMAGE_WORDS = ("postgres", "mariadb", "mysql", "redis", "valkey", "keydb", "percona", "timescale")
ENGINE_OF_WORD = {
    "postgres": spec.Engine.POSTGRES,
    "timescale": spec.Engine.POSTGRES,
    "mariadb": spec.Engine.MARIADB,
    "mariadb/mysql": spec.Engine.MARIADB,
    "mysql": spec.Engine.MYSQL,
    "percona": spec.Engine.MYSQL,
    "redis": spec.Engine.REDIS,
    "valkey": spec.Engine.REDIS,
    "keydb": spec.Engine.REDIS,
}


def looks_like_database(c: live.Container) -> str | None:
    """The kind of database a container looks like, by its image's name or the ports it exposes, or None."""
    image = c.image.lower().rsplit("/", 1)[-1]
    for word in DATABASE_IMAGE_WORDS:
        if word in image:
            return word
    for p in c.ports:
        if p.container_port in DATABASE_PORTS:
            return DATABASE_PORTS[p.container_port]
    return None


def engine_of(c: live.Container, declared: spec.DatabaseInstance | None) -> spec.Engine | None:
    """The engine of a container: what it is declared as, or what it looks like."""
    if declared is not None:
        return declared.spec.engine
    word = looks_like_database(c)
    return ENGINE_OF_WORD.get(word) if word else None
