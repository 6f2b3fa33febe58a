"""The interface every database engine module implements (as SQLAlchemy's dialects or Terraform's providers do): what
dbstate must know of an engine to recognise, validate, probe, back up, restore and upgrade it. Pure: argv, queries,
parsers and facts. Whatever runs a command is the caller's: an engine module is handed a `Query` (run this argv in
the server's container, give me its stdout or raise) and decides nothing about where or when."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.core import spec, versions
from controller.core.secrets import Secret, reveal

Query = Callable[[list[str]], str]  # run argv in the server's container as the login, its stdout (raises on failure)


@dataclass(frozen=True)
class Ran:
    """A tool run to its end: exit code, stdout, the end of stderr."""

    code: int
    stdout: bytes
    stderr: str = ""


@dataclass(frozen=True)
class Login:
    """Who the tools log in as: `user` may go on a command line, `env` (with the password) only in the exec's
    environment."""

    user: str | None
    env: Mapping[str, str] = field(repr=False)
    os_user: str = ""  # the container user the tools run as ("" = the image's)


class Counter(Protocol):
    """Reads a dump stream as it passes: the rows of each table, and the databases it holds."""

    counts: dict[str, int]
    databases: list[str]

    def feed(self, chunk: bytes) -> None: ...


class Replay(Protocol):
    """A filter a dump passes through on its way to the client in a restore: `refused` lists what it would not pass
    (a restore checks the whole file with it first); `key` is None when the client cannot be restricted."""

    key: bytes | None
    refused: list[str]

    def start(self) -> bytes: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


@dataclass(frozen=True)
class Exporter:
    """An engine's standard Prometheus exporter: the one whose metric names every dashboard and alerting mixin
    expects. Its login is passed in its environment (`Database.exporter_env`), never on its command line."""

    name: str  # postgres_exporter, mysqld_exporter, redis_exporter
    package: str  # Debian's package of it (what the tests' stand-in images are built from)
    port: int  # where it serves /metrics
    up_metric: str  # 1 while it reaches the server
    image: str  # the exporter project's own image, pinned: one whose settings are all environment variables
    args: tuple[str, ...] = ()  # flags it runs with (never a secret): collectors the dashboards need


@dataclass(frozen=True)
class Guess:
    """What `import` declares for a container's login, and what it could not know (comments in the YAML)."""

    auth: dict[str, Any]
    comments: tuple[str, ...] = ()


def parse_rows(text: str) -> dict[str, int]:
    """`key<TAB>count` lines (a client's tab-separated rows) as counts."""
    out = {}
    for line in text.splitlines():
        key, _, n = line.rpartition("\t")
        if key and n.strip().isdigit():
            out[key] = int(n)
    return out


def env_secret(inst: spec.DatabaseInstance, *names: str) -> str | None:
    """The first of `names` the declaration's env sets, revealed (for the exec's environment only)."""
    for n in names:
        v = inst.spec.env.get(n)
        if v is not None:
            return reveal(v) if isinstance(v, Secret) else str(v)
    return None


def env_plain(inst: spec.DatabaseInstance, name: str) -> str | None:
    v = inst.spec.env.get(name)
    return None if v is None or isinstance(v, Secret) else str(v)


def declared_password(inst: spec.DatabaseInstance) -> str | None:
    auth = inst.spec.auth
    return reveal(auth.password) if auth.password is not None else None


class Database:
    """One database engine. Class attributes are its facts; methods its commands and rules. The families share a
    wire protocol and a backup format (`postgres`, `mysql`: SQL dumps; `redis`: an RDB file)."""

    engine: spec.Engine
    family: str  # the wire protocol: which client adapters/probes uses, and how a backup is taken
    image_words: tuple[str, ...] = ()  # an image whose name holds one of these is this engine
    port: int = 0  # the port its images listen on (recognition by port, when the name says nothing)
    auth_methods: frozenset[str] = frozenset()
    needs_user: bool = True  # auth.user is required
    two_part_versions: bool = False  # a major release is two numbers (MariaDB 10.11), else one
    sql: bool = True  # backed up as a SQL dump replayed by its client (else as a data file)
    backup_format: str = "sql.gz"
    password_env: tuple[str, ...] = ()  # the image's env that sets the superuser's password
    image_version_env: tuple[str, ...] = ()  # the image's env that says which version it ships (`*_VERSION`: in
    # full, `*_MAJOR`: the major only), in the order `import` reads them
    greets_with_version = False  # its wire protocol announces the server's version before any login
    password_flag: str | None = None  # the server's flag that sets its password on a command line (import moves it)
    # the server's other flags that take a secret on a command line, with the env variable import moves each to
    credential_flags: tuple[tuple[str, str], ...] = ()
    tool: str = ""  # the client, as errors name it
    data_path: str = ""  # where the official image keeps its data
    exporter: Exporter | None = None  # its standard Prometheus exporter
    monitor_login_persists: bool = True  # the exporter's login outlives a restart of the server (else: made again)

    # -- monitoring --------------------------------------------------------------------------------------------------

    def exporter_env(self, address: str, port: int, user: str | None, password: str) -> dict[str, str]:
        """The environment that points its exporter at the server at `address:port` as `user`."""
        raise NotImplementedError(f"{self.engine.value} has no exporter")

    def monitor_login(self, who: Login, user: str, password: str) -> tuple[list[str], bytes]:
        """A command run as `who` in the server's container, and what it reads on stdin (the password goes there,
        never on a command line): makes the exporter's login `user`, least-privileged, or sets its password. Run
        again, it changes nothing but the password."""
        raise NotImplementedError(f"{self.engine.value} has no exporter")

    # -- versions ---------------------------------------------------------------------------------------------------

    def major(self, version: str) -> str:
        """The part of a version that makes a major release: `16` of 16.2, `10.11` of MariaDB 10.11.9."""
        return versions.major(self.two_part_versions, version)

    def data_major(self, server_version: str) -> str | None:
        """The major of the data a server reports, when a new major must convert it (None: it never must)."""
        if not versions.numbers(server_version):
            return None
        return self.major(".".join(str(n) for n in versions.numbers(server_version)[:3]))

    # -- declarations -----------------------------------------------------------------------------------------------

    def checks(self, s: spec.DatabaseInstanceSpec) -> list[tuple[tuple[str | int, ...], str]]:
        """Validation errors of this engine's own (path under the document, message)."""
        return []

    def guess_auth(self, env: Mapping[str, str], declared_env: Mapping[str, str]) -> Guess:
        """`import`: the login of a container from its whole env (the image's included); `declared_env` holds the
        `${VAR}` references the YAML uses for its secrets."""
        raise NotImplementedError

    def own_credentials(self, env: Mapping[str, str]) -> tuple[str, str | None, Secret | None, str | None]:
        """`audit` of a database nobody declared: (method, user, password, database) as its image's env set it up."""
        raise NotImplementedError

    def fallback_database(self, auth: spec.Auth) -> str | None:
        """A database to try when the guessed login's own does not exist (None: nothing else to try)."""
        return None

    # -- the tools, in the server's container -----------------------------------------------------------------------

    def login(self, inst: spec.DatabaseInstance) -> Login:
        """The superuser of the container's own environment when it has one (a dump needs everything), else the
        probe's login."""
        raise NotImplementedError

    def scratch(self, who: Login, password: str) -> tuple[Login, dict[str, str]]:
        """A throw-away server of the same image (a verification): its login, and the env that sets it up."""
        raise NotImplementedError

    def ready_argv(self, who: Login) -> list[str]:
        """A command that succeeds once the server answers over TCP inside its container."""
        raise NotImplementedError

    def is_ready(self, ran: Ran) -> bool:
        return ran.code == 0

    def server_version(self, who: Login, query: Query) -> str:
        """What the server reports as its version."""
        raise NotImplementedError

    def counts(self, who: Login, query: Query) -> dict[str, int]:
        """The rows of every table of every database (a key-value store: its keys), as the server holds them now."""
        raise NotImplementedError

    def digests(self, who: Login, query: Query) -> dict[str, str]:
        """A digest of each table's rows (`db/table` -> digest), as the server holds them now."""
        return {k: str(v) for k, v in self.counts(who, query).items()}

    after_new_image_tool = ""  # what `after_new_image` runs, as errors name it

    def extensions(self, who: Login, query: Query) -> set[str]:
        """The extensions the running server's databases use (none for an engine without them)."""
        return set()

    def available_extensions(self, who: Login, query: Query) -> set[str] | None:
        """The extensions a server of this image could create (None: the engine has no such notion)."""
        return None

    def after_new_image(self, who: Login) -> list[str] | None:
        """A command its documentation asks for after the server runs a new image (MariaDB's mariadb-upgrade)."""
        return None

    def rebuild_statistics(self, who: Login) -> list[str] | None:
        """A command that rebuilds the planner's statistics of a server whose data was just restored from a dump
        (none are carried over), run in the background once it serves: PostgreSQL's `vacuumdb --analyze-in-stages`."""
        return None

    def refusal(self, output: str) -> str | None:
        """The server's refusal in a command's output that exited 0 (a key-value client prints its errors), or None."""
        return None

    # -- SQL dumps (`sql`) ------------------------------------------------------------------------------------------

    def dump_argv(self, who: Login) -> list[str]:
        raise ValueError(f"{self.engine.value} is backed up as a data file, not a dump command")

    def restore_argv(self, who: Login) -> list[str]:
        """Reads the plain dump on stdin."""
        raise ValueError(f"{self.engine.value} is restored from its data file")

    def sql_argv(self, who: Login, sql: str, database: str = "") -> list[str]:
        """One query whose rows come back tab-separated. The SQL holds names only, never a value from outside."""
        raise ValueError(f"{self.engine.value} has no SQL")

    def restore_errors(self, stderr: str) -> list[str]:
        """The lines of a replay's stderr that mean it failed."""
        return [ln for ln in stderr.splitlines() if ln.strip()]

    def counter(self) -> Counter | None:
        return None

    def clear_statements(self, databases: list[str], server_version: str) -> list[tuple[str, str]]:
        """(database to run in, statement): what makes room for the databases a dump recreates."""
        raise ValueError(f"{self.engine.value} has no databases to clear")

    def restricts(self, tool_version: str) -> bool:
        """Whether the client that printed `tool_version` can replay a dump restricted (`replay_filter`)."""
        return False

    def replay_filter(self, key: str | None) -> Replay | None:
        """The filter a dump passes through in a restore (`key`: a random one that restricts the client; None: scan
        only), or None when the engine needs none."""
        return None

    def tool_version_argv(self) -> list[str] | None:
        """The client's `--version`, when `restricts` depends on it."""
        return None
