"""One module per database engine (databases/base.py is the interface they implement): the core's rules, the probes,
and the data operations ask the engine's module, and nothing outside these modules branches on an engine's name.
A new engine is one module here, its name in `spec.Engine`, and its line below. A module is imported when its engine
is first asked for: `validate` of a PostgreSQL-only directory loads PostgreSQL's alone."""

from __future__ import annotations

import functools
import importlib

from controller.core import spec
from controller.core.databases.base import Database, Exporter, Guess, Login, Query, Ran

__all__ = ["Database", "Exporter", "Guess", "Login", "Query", "Ran", "every", "named", "of"]

_MODULES: dict[spec.Engine, tuple[str, str]] = {  # engine -> (its module here, the Database it defines)
    spec.Engine.POSTGRES: ("postgres", "POSTGRES"),
    spec.Engine.MARIADB: ("mariadb", "MARIADB"),
    spec.Engine.MYSQL: ("mariadb", "MYSQL"),
    spec.Engine.REDIS: ("redis", "REDIS"),
    spec.Engine.VALKEY: ("valkey", "VALKEY"),
}


@functools.cache
def _load(engine: spec.Engine) -> Database:
    module, name = _MODULES[engine]
    found = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    assert isinstance(found, Database), f"{module}.{name} is not a Database"
    return found


def of(engine: spec.Engine | str) -> Database:
    """The module of `engine` (its name, as a declaration or a backup's manifest says it)."""
    return _load(spec.Engine(engine))


def every() -> tuple[Database, ...]:
    """Every engine's module (recognising an image, which may be any of them, loads them all)."""
    return tuple(_load(e) for e in _MODULES)


def named(word: str) -> Database | None:
    """The engine an image's name word stands for (`timescale` is PostgreSQL), or None."""
    return next((d for d in every() if word in d.image_words), None)
