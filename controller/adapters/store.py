"""dbstate's local state (SQLite, default `.dbstate/state.db`): what it has learned from the engine.

For now it keeps the EndpointID -> aliases cache of the Docker adapter, so that a one-shot `dbstate plan` does not
have to inspect every container: an endpoint's aliases never change (a new alias means a new endpoint), so a cached
entry is never stale, only unused. Later it records passes, changes, findings and the volumes seen.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

DEFAULT_PATH = Path(".dbstate/state.db")
SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoint_aliases (
    endpoint_id TEXT PRIMARY KEY,
    aliases     TEXT NOT NULL
);
"""


def default_path() -> Path:
    return Path(os.environ.get("DBSTATE_STATE") or DEFAULT_PATH)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=5, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def endpoint_aliases(self) -> dict[str, tuple[str, ...]]:
        rows = self.db.execute("SELECT endpoint_id, aliases FROM endpoint_aliases").fetchall()
        return {e: tuple(json.loads(a)) for e, a in rows}

    def save_endpoint_aliases(self, current: Mapping[str, tuple[str, ...]]) -> None:
        """Keep exactly the endpoints seen now: the table never grows beyond the engine's endpoints."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM endpoint_aliases")
            self.db.executemany(
                "INSERT INTO endpoint_aliases VALUES (?, ?)", [(e, json.dumps(list(a))) for e, a in current.items()]
            )


def open_optional(path: Path) -> Store | None:
    """The store, or None when it cannot be opened (a read-only directory): dbstate then works without its cache."""
    try:
        return Store(path)
    except (OSError, sqlite3.Error):
        return None
