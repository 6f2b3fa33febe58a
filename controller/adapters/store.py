"""dbstate's local state (SQLite, default `.dbstate/state.db`): the history of passes, and what it has learned.

- passes: each plan/apply with its revision, and each change with its outcome, each finding (all already redacted:
  nothing secret is ever written here);
- volumes_seen: the declared volumes dbstate has seen on the engine; one that disappears afterwards is `volume-lost`;
- acks: an operator's acknowledgement of a lost volume (`dbstate ack volume-lost NAME`), consumed when the volume is
  seen again;
- health: the last probe of each instance (reachable, version, round trip, error, all already redacted) and its count
  of consecutive failures, which `unhealthy` and `policy.restartAfterFailedProbes` count against;
- endpoint_aliases: the Docker adapter's EndpointID -> aliases cache. An endpoint's aliases never change (a new alias
  means a new endpoint), so a cached entry is never stale, only unused;
- controllers and jobs: each running `dbstate run` (its lease holder ids, while it runs) and the one-off
  commands (restore, migrate-volume, rollback) handed to it because it holds the engine lease: queued by the command,
  claimed and performed by the controller, with their progress and result (commands/oneoff.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from controller.core import errors, placement
from controller.core.adoption import Adoption

T = TypeVar("T")
P = ParamSpec("P")

if TYPE_CHECKING:
    from controller.core.health import ProbeResult
    from controller.core.plan import Finding, Outcome, ResourceStatus

DEFAULT_PATH = Path(".dbstate/state.db")
# The schema's version (PRAGMA user_version). 0 is dbstate 0.1.0, which did not set it; each step of MIGRATIONS takes a
# database from the version before to its own, forward only, so a database from any earlier release opens.
SCHEMA_VERSION = 5
SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoint_aliases (
    endpoint_id TEXT PRIMARY KEY,
    aliases     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS passes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    command   TEXT NOT NULL,
    started   REAL NOT NULL,
    finished  REAL,
    revision  TEXT,
    dirty     INTEGER,
    changes   INTEGER,
    failed    INTEGER,
    findings  INTEGER,
    errors    INTEGER
);
CREATE TABLE IF NOT EXISTS changes (
    pass_id   INTEGER NOT NULL REFERENCES passes(id),
    action    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    target    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    status    TEXT NOT NULL,
    message   TEXT NOT NULL,
    seconds   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    pass_id   INTEGER NOT NULL REFERENCES passes(id),
    type      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    message   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes_seen (
    name       TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen  REAL NOT NULL,
    identity   TEXT              -- which volume it was (core.labels.volume_identity), when known
);
CREATE TABLE IF NOT EXISTS resources (
    key        TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    message    TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_retry REAL,
    revision   TEXT,
    updated    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS health (
    instance   TEXT PRIMARY KEY,
    reachable  INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    version    TEXT,
    rtt_ms     REAL,
    error      TEXT,
    probed     REAL NOT NULL,
    last_ok    REAL
);
CREATE TABLE IF NOT EXISTS adoptions (
    key          TEXT PRIMARY KEY,  -- DatabaseInstance/NAME
    container_id TEXT NOT NULL,     -- labels cannot be added to a running container: ownership is by id
    spec_hash    TEXT NOT NULL,     -- of the declaration it matched
    at           REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS suspensions (
    key  TEXT PRIMARY KEY,  -- DatabaseInstance/NAME
    who  TEXT NOT NULL,
    why  TEXT NOT NULL,
    at   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS acks (
    type  TEXT NOT NULL,
    name  TEXT NOT NULL,
    at    REAL NOT NULL,
    PRIMARY KEY (type, name)
);
"""


def _v1_volume_identity(db: sqlite3.Connection) -> None:
    """0.1.0 databases written before volumes were known by their identity."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(volumes_seen)")}
    if "identity" not in columns:
        db.execute("ALTER TABLE volumes_seen ADD COLUMN identity TEXT")


def _v2_history_indexes(db: sqlite3.Connection) -> None:
    """Retention deletes by time and by pass: indexes, so that a year of passes is pruned in one quick statement."""
    db.execute("CREATE INDEX IF NOT EXISTS passes_started ON passes(started)")
    db.execute("CREATE INDEX IF NOT EXISTS changes_pass ON changes(pass_id)")
    db.execute("CREATE INDEX IF NOT EXISTS findings_pass ON findings(pass_id)")


def _v3_overview(db: sqlite3.Connection) -> None:
    """What the web view shows of the last pass beyond the rows above (core/overview.py), as one JSON document."""
    db.execute("CREATE TABLE IF NOT EXISTS overview (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)")
    if "trigger" not in {r[1] for r in db.execute("PRAGMA table_info(passes)")}:
        db.execute("ALTER TABLE passes ADD COLUMN trigger TEXT")  # what started the pass (run): an event, a commit


def _v4_hosts(db: sqlite3.Connection) -> None:
    """Several engines (`kind: Host`), one reconciler each, one state database: what a pass replaces as a whole
    (the status of its resources, its alias cache, its probes, its overview) is kept per engine. Names stay unique
    across engines, so the facts kept by name (volumes seen, adoptions, acks, suspensions) need no engine."""
    for table in ("resources", "endpoint_aliases", "health"):
        if "host" not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN host TEXT NOT NULL DEFAULT '{placement.DEFAULT}'")
    if "host" not in {r[1] for r in db.execute("PRAGMA table_info(passes)")}:
        db.execute("ALTER TABLE passes ADD COLUMN host TEXT")
        db.execute("ALTER TABLE passes ADD COLUMN error TEXT")  # a pass that could not run: why (redacted)
    db.execute("CREATE TABLE IF NOT EXISTS overviews (host TEXT PRIMARY KEY, body TEXT NOT NULL)")
    db.execute(f"INSERT OR IGNORE INTO overviews SELECT '{placement.DEFAULT}', body FROM overview")  # noqa: S608
    db.execute("DROP TABLE overview")


def _v5_jobs(db: sqlite3.Connection) -> None:
    """One-off commands handed to the running controller, and the controllers that take them."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS controllers (holder TEXT PRIMARY KEY, hosts TEXT NOT NULL, pid INTEGER NOT NULL, "
        "seen REAL NOT NULL)"
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS jobs (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        host      TEXT NOT NULL,      -- the engine whose lease holder performs it
        command   TEXT NOT NULL,      -- restore | migrate-volume | rollback
        instance  TEXT NOT NULL,
        args      TEXT NOT NULL,      -- the command's options as JSON (names and ids: never a secret)
        who       TEXT NOT NULL,
        requested REAL NOT NULL,
        state     TEXT NOT NULL,      -- queued | running | done | failed | cancelled
        holder    TEXT,               -- the controller that claimed it
        log       TEXT NOT NULL DEFAULT '',
        output    TEXT NOT NULL DEFAULT '',
        exit_code INTEGER,
        finished  REAL
    )"""
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1_volume_identity,
    2: _v2_history_indexes,
    3: _v3_overview,
    4: _v4_hosts,
    5: _v5_jobs,
}


def default_path() -> Path:
    return Path(os.environ.get("DBSTATE_STATE") or DEFAULT_PATH)


def _guarded(method: Callable[Concatenate[Store, P], T]) -> Callable[Concatenate[Store, P], T]:
    """A SQLite error while in use (disk full, I/O error, locked past the timeout, a file replaced underneath) is a
    `StateError` that names the file and says what to do: a pass reports it and is retried, and nothing else fails."""

    def guarded(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise errors.StateError(
                f"the state database {self.path} cannot be used: {e} (free space or fix its filesystem; dbstate "
                "retries, and changes nothing while it cannot record what it does)"
            ) from e

    return guarded


class Store:
    def __init__(self, path: Path, *, readonly: bool = False, host: str = placement.DEFAULT) -> None:
        """`readonly`: for readers such as `dbstate status`, which must never take a write lock from the controller.

        The file is the operator's record of what dbstate did and what protects data (volumes seen, acks): it is
        made 0600, in a directory made 0700. A file that is not a SQLite database is a `StateError` naming it, never
        silently replaced or ignored.

        `host`: the engine whose passes this connection writes (one reconciler per engine, one connection each)."""
        self.path, self.host = path, host
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, isolation_level=None)
                self.db.execute("PRAGMA busy_timeout=5000")
                self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return
            _private(path)
            # one connection per engine's reconciler, used by the thread of its loop (or of `plan`'s pool): SQLite
            # is built serialized here (sqlite3.threadsafety 3), so the connection may move between threads
            self.db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # cannot open, locked, disk full: not the file's fault
                raise
            raise errors.StateError(
                f"{path} is not a dbstate state database ({e}): move it away (dbstate then starts a new one, and "
                "forgets the volumes it has seen) or pass --state"
            ) from e

    def _migrate(self) -> None:
        """Forward to SCHEMA_VERSION, one step at a time, each in a transaction with its version."""
        version = self.version()
        if version > SCHEMA_VERSION:
            raise errors.StateError(
                f"{self.path} was written by a newer dbstate (schema {version}; this one knows {SCHEMA_VERSION}): "
                "upgrade dbstate, or pass another --state"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                MIGRATIONS[step](self.db)
                self.db.execute(f"PRAGMA user_version = {int(step)}")

    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guarded
    def endpoint_aliases(self) -> dict[str, tuple[str, ...]]:
        rows = self.db.execute(
            "SELECT endpoint_id, aliases FROM endpoint_aliases WHERE host = ?", (self.host,)
        ).fetchall()
        return {e: tuple(json.loads(a)) for e, a in rows}

    @_guarded
    def save_endpoint_aliases(self, current: Mapping[str, tuple[str, ...]]) -> None:
        """Keep exactly the endpoints seen now: the table never grows beyond the engine's endpoints."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM endpoint_aliases WHERE host = ?", (self.host,))
            self.db.executemany(
                "INSERT OR REPLACE INTO endpoint_aliases (endpoint_id, aliases, host) VALUES (?, ?, ?)",
                [(e, json.dumps(list(a)), self.host) for e, a in current.items()],
            )

    # -- passes -------------------------------------------------------------------------------------------------

    @_guarded
    def begin_pass(
        self,
        command: str,
        revision: str | None,
        dirty: bool | None,
        trigger: str | None = None,
        started: float | None = None,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO passes (command, started, revision, dirty, trigger, host) VALUES (?, ?, ?, ?, ?, ?)",
            (command, started or time.time(), revision, None if dirty is None else int(dirty), trigger, self.host),
        )
        return int(cur.lastrowid or 0)

    @_guarded
    def record_findings(self, pass_id: int, findings: Iterable[Finding]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO findings VALUES (?, ?, ?, ?, ?)",
                [(pass_id, f.type.value, f.kind, f.name, f.message) for f in findings],
            )

    @_guarded
    def record_outcome(self, pass_id: int, outcome: Outcome) -> None:
        """One change with its outcome, as soon as it is known (a crash loses nothing already done)."""
        c = outcome.change
        self.db.execute(
            "INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pass_id,
                c.action.value,
                c.kind,
                c.name,
                c.target,
                c.reason,
                outcome.status,
                outcome.message,
                outcome.seconds,
            ),
        )

    @_guarded
    def durations(self) -> dict[tuple[str, str], list[float]]:
        """How long each successful change took, oldest first: per (action, "Kind/name"), and per (action, "") the
        last 50 of that action (what the plan estimates a disruption from)."""
        out: dict[tuple[str, str], list[float]] = {}
        rows = self.db.execute(
            "SELECT action, kind, name, seconds FROM changes WHERE status = 'ok' ORDER BY rowid DESC LIMIT 2000"
        ).fetchall()
        for action, kind, name, seconds in reversed(rows):
            out.setdefault((action, f"{kind}/{name}"), []).append(float(seconds))
            out.setdefault((action, ""), []).append(float(seconds))
        return {k: v[-50:] for k, v in out.items()}

    @_guarded
    def finish_pass(self, pass_id: int, changes: int, failed: int, findings: int, errors: int) -> None:
        self.db.execute(
            "UPDATE passes SET finished = ?, changes = ?, failed = ?, findings = ?, errors = ? WHERE id = ?",
            (time.time(), changes, failed, findings, errors, pass_id),
        )

    @_guarded
    def record_failed_pass(self, command: str, trigger: str | None, started: float, error: str) -> None:
        self.db.execute(
            "INSERT INTO passes (command, started, finished, trigger, host, error, errors) "
            "VALUES (?, ?, ?, ?, ?, ?, 1)",
            (command, started, time.time(), trigger, self.host, error),
        )

    @_guarded
    def last_passes(self) -> dict[str, dict[str, Any]]:
        """The newest pass of each engine."""
        cur = self.db.execute(
            "SELECT * FROM passes WHERE id IN (SELECT max(id) FROM passes GROUP BY host) ORDER BY host"
        )
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        return {r.get("host") or placement.DEFAULT: r for r in rows}

    @_guarded
    def set_overview(self, body: Mapping[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO overviews VALUES (?, ?)", (self.host, json.dumps(body)))

    @_guarded
    def overviews(self) -> dict[str, dict[str, Any]]:
        """Each engine's overview of its last pass, by engine."""
        try:
            rows = self.db.execute("SELECT host, body FROM overviews ORDER BY host").fetchall()
        except sqlite3.OperationalError:  # a reader of a database not yet migrated by a writer
            return {}
        return {host: dict(json.loads(body)) for host, body in rows}

    @_guarded
    def prune(self, before: float) -> int:
        """Retention: the passes that started before `before` (never the newest), with their changes and findings.
        The facts that protect data (volumes seen, adoptions, acks, suspensions) are never pruned. The number of
        passes removed."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            newest = self.db.execute("SELECT max(id) FROM passes").fetchone()[0] or 0
            old = "SELECT id FROM passes WHERE started < ? AND id < ?"
            self.db.execute(f"DELETE FROM changes WHERE pass_id IN ({old})", (before, newest))  # noqa: S608
            self.db.execute(f"DELETE FROM findings WHERE pass_id IN ({old})", (before, newest))  # noqa: S608
            cur = self.db.execute("DELETE FROM passes WHERE started < ? AND id < ?", (before, newest))
            return int(cur.rowcount)

    @_guarded
    def passes(self, limit: int = 20) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM passes ORDER BY id DESC LIMIT ?", (limit,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    @_guarded
    def changes_of(self, pass_id: int) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM changes WHERE pass_id = ?", (pass_id,))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    @_guarded
    def set_resources(self, rows: Iterable[ResourceStatus]) -> None:
        """The state of every resource after a pass."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM resources WHERE host = ?", (self.host,))
            self.db.executemany(
                "INSERT OR REPLACE INTO resources "
                "(key, status, message, attempts, next_retry, revision, updated, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*r, now, self.host) for r in rows],
            )

    @_guarded
    def resources(self) -> list[dict[str, Any]]:
        """Every engine's resources, each with its `host`."""
        cur = self.db.execute("SELECT * FROM resources ORDER BY host, key")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # -- volumes ------------------------------------------------------------------------------------------------

    @_guarded
    def seen_volumes(self) -> dict[str, str | None]:
        """Every declared volume seen on the engine, with its identity when known."""
        return dict(self.db.execute("SELECT name, identity FROM volumes_seen").fetchall())

    @_guarded
    def mark_volumes_seen(self, volumes: Mapping[str, str | None]) -> None:
        """Declared volumes present on the engine now (name -> identity, None when not known yet): the caller
        has decided that each is the volume to keep. Seeing one consumes its volume-lost acknowledgement."""
        now = time.time()
        rows = [(n, now, now, identity) for n, identity in volumes.items()]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO volumes_seen VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "last_seen = excluded.last_seen, identity = COALESCE(excluded.identity, volumes_seen.identity)",
                rows,
            )
            self.db.executemany("DELETE FROM acks WHERE type = 'volume-lost' AND name = ?", [(r[0],) for r in rows])

    @_guarded
    def adoptions(self) -> dict[str, Adoption]:
        rows = self.db.execute("SELECT key, container_id, spec_hash FROM adoptions").fetchall()
        return {key: Adoption(key, cid, spec_hash) for key, cid, spec_hash in rows}

    @_guarded
    def record_adoption(self, adopted: Adoption) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO adoptions VALUES (?, ?, ?, ?)",
            (adopted.key, adopted.container_id, adopted.spec_hash, time.time()),
        )

    @_guarded
    def suspensions(self) -> dict[str, str]:
        rows = self.db.execute("SELECT key, who, why FROM suspensions").fetchall()
        return {key: f"by {who}: {why}" for key, who, why in rows}

    @_guarded
    def suspend(self, key: str, who: str, why: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO suspensions VALUES (?, ?, ?, ?)", (key, who, why, time.time()))

    @_guarded
    def resume(self, key: str) -> bool:
        return self.db.execute("DELETE FROM suspensions WHERE key = ?", (key,)).rowcount > 0

    @_guarded
    def acknowledged(self, type_: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.db.execute("SELECT name FROM acks WHERE type = ?", (type_,)))

    @_guarded
    def ack(self, type_: str, name: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO acks VALUES (?, ?, ?)", (type_, name, time.time()))

    # -- controllers and their jobs ---------------------------------------------------------------------------------

    @_guarded
    def controller_alive(self, holder: str, hosts: Iterable[str]) -> None:
        """A running controller says it takes jobs for `hosts` (once, as it starts; `controller_gone` as it stops)."""
        self.db.execute(
            "INSERT OR REPLACE INTO controllers VALUES (?, ?, ?, ?)",
            (holder, json.dumps(sorted(hosts)), os.getpid(), time.time()),
        )

    @_guarded
    def controller_gone(self, holder: str) -> None:
        self.db.execute("DELETE FROM controllers WHERE holder = ?", (holder,))

    @_guarded
    def controller_seen(self, holder: str) -> float | None:
        """When the controller `holder` last said it takes jobs (None: never, or it stopped)."""
        row = self.db.execute("SELECT seen FROM controllers WHERE holder = ?", (holder,)).fetchone()
        return float(row[0]) if row else None

    @_guarded
    def enqueue_job(self, host: str, command: str, instance: str, args: Mapping[str, Any], who: str) -> int:
        cur = self.db.execute(
            "INSERT INTO jobs (host, command, instance, args, who, requested, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'queued')",
            (host, command, instance, json.dumps(dict(args), sort_keys=True), who, time.time()),
        )
        return int(cur.lastrowid or 0)

    @_guarded
    def claim_job(self, hosts: Iterable[str], holder: str) -> dict[str, Any] | None:
        """The oldest queued job of one of `hosts`, now `running` by `holder` (None: nothing queued). One claim
        per job, whoever else polls: the update only takes a row that is still queued."""
        names = sorted(hosts)
        if not names:
            return None
        marks = ", ".join("?" for _ in names)
        while True:
            row = self.db.execute(
                f"SELECT id FROM jobs WHERE state = 'queued' AND host IN ({marks}) ORDER BY id LIMIT 1",  # noqa: S608
                names,
            ).fetchone()
            if row is None:
                return None
            taken = self.db.execute(
                "UPDATE jobs SET state = 'running', holder = ? WHERE id = ? AND state = 'queued'", (holder, row[0])
            ).rowcount
            if taken:
                return self.job(int(row[0]))

    @_guarded
    def job(self, job_id: int) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([d[0] for d in cur.description], row, strict=True))
        out["args"] = json.loads(out["args"])
        return out

    @_guarded
    def jobs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest jobs and every one still queued or running, newest first (what `status` shows; none from a
        database older than the jobs: read-only readers never migrate it)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchall():
            return []
        cur = self.db.execute(
            "SELECT id, host, command, instance, who, requested, state, exit_code, finished FROM jobs "
            "WHERE state IN ('queued', 'running') OR id IN (SELECT id FROM jobs ORDER BY id DESC LIMIT ?) "
            "ORDER BY id DESC",
            (limit,),
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @_guarded
    def job_says(self, job_id: int, line: str) -> None:
        self.db.execute("UPDATE jobs SET log = log || ? WHERE id = ?", (line.rstrip("\n") + "\n", job_id))

    @_guarded
    def finish_job(self, job_id: int, exit_code: int, output: str) -> None:
        state = "done" if exit_code == 0 else "failed"
        self.db.execute(
            "UPDATE jobs SET state = ?, exit_code = ?, output = ?, finished = ? WHERE id = ?",
            (state, exit_code, output, time.time(), job_id),
        )

    @_guarded
    def cancel_job(self, job_id: int) -> bool:
        """Withdraw a job that no controller has claimed yet (False: it is running or over)."""
        return (
            self.db.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            ).rowcount
            > 0
        )

    # -- health -------------------------------------------------------------------------------------------------

    @_guarded
    def record_probes(self, results: Iterable[ProbeResult], keep: Iterable[str]) -> dict[str, int]:
        """Each probe result of this pass; returns the consecutive failures per instance,
        this probe included. Instances not in `keep` (no longer declared) are forgotten."""
        now = time.time()
        probed = list(results)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            before = dict(
                self.db.execute("SELECT instance, failures FROM health WHERE host = ?", (self.host,)).fetchall()
            )
            counts = {r.instance: 0 if r.reachable else int(before.get(r.instance, 0)) + 1 for r in probed}
            self.db.executemany(
                "INSERT INTO health (instance, reachable, failures, version, rtt_ms, error, probed, last_ok, host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(instance) DO UPDATE SET host = excluded.host, "
                "reachable = excluded.reachable, failures = excluded.failures, version = COALESCE(excluded.version, "
                "health.version), rtt_ms = excluded.rtt_ms, error = excluded.error, probed = excluded.probed, "
                "last_ok = COALESCE(excluded.last_ok, health.last_ok)",
                [
                    (
                        r.instance,
                        int(r.reachable),
                        counts[r.instance],
                        r.version,
                        r.rtt_ms,
                        r.error,
                        now,
                        now if r.reachable else None,
                        self.host,
                    )
                    for r in probed
                ],
            )
            kept = set(keep)
            self.db.executemany(
                "DELETE FROM health WHERE instance = ? AND host = ?",
                [(n, self.host) for n in before if n not in kept and n not in counts],
            )
        return counts

    @_guarded
    def health(self) -> list[dict[str, Any]]:
        try:
            cur = self.db.execute("SELECT * FROM health ORDER BY instance")
        except sqlite3.OperationalError:  # a database written before probes existed, opened read-only
            return []
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _private(path: Path) -> None:
    """The state database's directory 0700 when dbstate makes it, and the file 0600 (its -wal and -shm files take
    the file's mode); an existing file readable by others is narrowed."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)


def open_optional(path: Path, host: str = placement.DEFAULT) -> Store | None:
    """The store, or None when it cannot be opened (a read-only directory): dbstate then works without its memory.
    A file that is not a state database is an error all the same (`errors.StateError`)."""
    try:
        return Store(path, host=host)
    except (OSError, sqlite3.OperationalError):
        return None
