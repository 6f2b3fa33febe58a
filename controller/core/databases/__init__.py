"""One module per database engine (databases/base.py is the interface they implement): the core's rules, the probes,
and the data operations ask the engine's module, and nothing outside these modules branches on an engine's name.
A new engine is one module here, its name in `spec.Engine`, and its line below."""

from __future__ import annotations

from controller.core import spec
from controller.core.databases.base import Database, Guess, Login, Query, Ran
from controller.core.databases.mariadb import MARIADB, MYSQL
from controller.core.databases.postgres import POSTGRES
from controller.core.databases.redis import REDIS
from controller.core.databases.valkey import VALKEY

__all__ = ["Database", "Guess", "Login", "Query", "Ran", "every", "named", "of"]

_ALL: dict[spec.Engine, Database] = {d.engine: d for d in (POSTGRES, MARIADB, MYSQL, REDIS, VALKEY)}


def of(engine: spec.Engine | str) -> Database:
    """The module of `engine` (its name, as a declaration or a backup's manifest says it)."""
    return _ALL[spec.Engine(engine)]


def every() -> tuple[Database, ...]:
    return tuple(_ALL.values())


def named(word: str) -> Database | None:
    """The engine an image's name word stands for (`timescale` is PostgreSQL), or None."""
    return next((d for d in _ALL.values() if word in d.image_words), None)
