"""PostgreSQL: recognised by `postgres`/`timescale` images or port 5432; majors are one number; backed up with
pg_dumpall and replayed with psql (restricted: a backup is code run as the superuser), its rows counted as the dump
passes (`COPY` blocks) and compared after a restore; PostgreSQL 18's images keep their data one level lower."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from controller.core import spec, versions
from controller.core.databases.base import (
    Database,
    Exporter,
    Guess,
    Login,
    Query,
    declared_password,
    env_plain,
    env_secret,
)
from controller.core.secrets import Secret

PG_DUMP = 'exec pg_dumpall --no-password --quote-all-identifiers "$@"'
PG_VERSION = "SHOW server_version_num"


# psql's `\restrict KEY` (the August 2025 minor releases: 13.22, 14.19, 15.14, 16.10, 17.6, and 18): from that line
# on, psql runs no meta-command but `\unrestrict KEY`, wherever it stands in a line.
PSQL_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


def psql_restricts(version_output: str) -> bool:
    r"""Whether the psql that printed `psql (PostgreSQL) 15.20 (Debian ...)` knows `\restrict`."""
    m = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", version_output)
    if not m:
        return False
    major, minor = int(m.group(1)), int(m.group(2) or 0)
    return major >= 18 or (major in PSQL_RESTRICT_SINCE and minor >= PSQL_RESTRICT_SINCE[major])


class PgReplay:
    r"""A pg_dumpall stream as psql is fed it in a restore: a backup is code run as the superuser, so psql runs it
    restricted (`\restrict KEY` before the first line: no meta-command of the dump runs, `\!` and `\o |cmd`
    included, wherever they stand), and each `\connect DATABASE` of pg_dumpall's own strict form is let through
    between `\unrestrict KEY` and `\restrict KEY` (KEY is random per restore: the dump cannot know it). The dump's own
    `\restrict`/`\unrestrict` lines are dropped. Any other line that starts with a meta-command is `refused` (the
    restore checks the whole file first, before it changes anything). COPY data passes untouched."""

    CONNECT = re.compile(
        rb"^\\connect (?:[A-Za-z0-9_.]+|\"[A-Za-z0-9_.]+\"|-reuse-previous=on \"dbname='(?:[^'\"\\\n]|''|\\['\\])*'\")$"
    )
    RESTRICT = re.compile(rb"^\\(?:un)?restrict [A-Za-z0-9]+$")
    COPY = re.compile(rb"^COPY\s.*FROM stdin;$")

    def __init__(self, key: str | None) -> None:
        self.key = key.encode() if key else None  # None: psql cannot restrict (older than PSQL_RESTRICT_SINCE)
        self.refused: list[str] = []  # "line N: \\cmd", the command's name only (never the rest of the line)
        self._copy = False
        self._rest = b""
        self._line_no = 0
        self._lexer = PsqlLexer()

    def start(self) -> bytes:
        return b"\\restrict " + self.key + b"\n" if self.key else b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._rest + chunk
        out: list[bytes] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._copy:
                if data.startswith(b"\\.\n", pos):
                    out.append(b"\\.\n")
                    self._copy, pos = False, pos + 3
                    self._line_no += 1
                    continue
                end = data.find(b"\n\\.\n", pos)
                stop = end + 1 if end >= 0 else data.rfind(b"\n", pos) + 1
                if stop <= pos:
                    break
                out.append(data[pos:stop])
                self._line_no += data.count(b"\n", pos, stop)
                pos = stop
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            out.append(self._line(data[pos:nl]))
            pos = nl + 1
        self._rest = data[pos:]
        return b"".join(out)

    def finish(self) -> bytes:
        rest, self._rest = self._rest, b""
        return self._line(rest) if rest else b""

    def _line(self, line: bytes) -> bytes:
        self._line_no += 1
        if self._lexer.state is None and line.startswith(b"\\"):
            if self.RESTRICT.match(line):
                return b""
            if self.CONNECT.match(line):
                if self.key is None:
                    return line + b"\n"
                return b"\\unrestrict " + self.key + b"\n" + line + b"\n\\restrict " + self.key + b"\n"
            self._refuse(line)
            return line + b"\n"
        at = self._lexer.meta_command(line)
        if at is not None:  # psql runs one wherever it stands outside quoted text: the restricted psql refuses it too
            self._refuse(line[at:])
        elif self._lexer.state is None and self.COPY.match(line):
            self._copy = True
        return line + b"\n"

    def _refuse(self, command: bytes) -> None:
        name = command.split(maxsplit=1)[0][:20].decode(errors="replace")
        self.refused.append(f"line {self._line_no}: {name}")


class PsqlLexer:
    """Where psql would see a meta-command (a backslash outside quoted text) in SQL text fed to it line by line, as
    psql's own lexer does: '...' (standard_conforming_strings, as pg_dump sets it), E'...' with backslash escapes,
    "identifiers", $tag$ bodies, -- and nested /* */ comments. The state carries over lines."""

    SPECIAL = re.compile(rb"[\\'\"$]|--|/\*")
    COMMENT = re.compile(rb"/\*|\*/")
    QUOTE, IDENT, E_STOPS = re.compile(rb"'"), re.compile(rb'"'), re.compile(rb"[\\']")
    DOLLAR = re.compile(rb"\$([A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")

    def __init__(self) -> None:
        self.state: tuple[str, bytes] | None = None  # ("'", b""), ("E", b""), ('"', b""), ("$", tag), ("*", depth)

    def meta_command(self, line: bytes) -> int | None:
        """The index of the first meta-command in `line` outside quoted text, or None."""
        i, n = 0, len(line)
        while i < n:
            if self.state is None:
                m = self.SPECIAL.search(line, i)
                if m is None:
                    return None
                token, start, i = m.group(), m.start(), m.end()
                if token == b"\\":
                    return start
                if token == b"--":
                    return None
                if token == b"/*":
                    self.state = ("*", b"1")
                elif token == b'"':
                    self.state = ('"', b"")
                elif token == b"'":
                    e_string = (
                        start > 0 and line[start - 1 : start] in (b"E", b"e") and not _word_before(line, start - 1)
                    )
                    self.state = ("E" if e_string else "'", b"")
                else:  # $: a dollar quote opens only where an identifier does not go on
                    d = self.DOLLAR.match(line, start)
                    if d is not None and not _word_before(line, start):
                        self.state, i = ("$", d.group()), d.end()
            else:
                i = self._inside(line, i)
        return None

    def _inside(self, line: bytes, i: int) -> int:
        """Past the quoted text or comment that is open at `i` (to the end of the line when it goes on)."""
        kind, data = self.state or ("", b"")
        if kind == "$":
            end = line.find(data, i)
            if end < 0:
                return len(line)
            self.state = None
            return end + len(data)
        if kind == "*":
            m = self.COMMENT.search(line, i)
            if m is None:
                return len(line)
            depth = int(data) + (1 if m.group() == b"/*" else -1)
            self.state = ("*", str(depth).encode()) if depth else None
            return m.end()
        quote = b'"' if kind == '"' else b"'"
        stops = self.E_STOPS if kind == "E" else (self.QUOTE if kind == "'" else self.IDENT)
        j = i
        while (m := stops.search(line, j)) is not None:
            j = m.end()
            if m.group() == b"\\" or line[j : j + 1] == quote:  # E'..': escaped; or doubled: the quote itself
                j += 1
            else:
                self.state = None
                return j
        return len(line)


def _word_before(line: bytes, at: int) -> bool:
    """Whether an identifier's character stands just before `at` (E'..' and $tag$ begin only after a non-word)."""
    return at > 0 and (line[at - 1 : at].isalnum() or line[at - 1 : at] in (b"_", b"$") or line[at - 1] >= 0x80)


# The restore of a pg_dumpall into a fresh server meets the roles and the database the image made at its first start:
# those errors are expected; any other is a failed restore.
PG_EXPECTED = re.compile(r'ERROR:\s+(role|database) "[^"]+" already exists')
PSQL_ERROR = re.compile(r": error: |^backslash commands are restricted")


PG_DATABASES = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
# $2 in each database of $1's, its rows prefixed with the database's name: one exec for all of them (a cutover's
# checks run in its downtime, where each exec is a tenth of a second)
PG_EACH_DATABASE = r"""set -ef
dbs=$(psql --no-password -X -q -A -t -d postgres -c "$1")
tab=$(printf '\t')
IFS='
'
for db in $dbs; do
  rows=$(psql --no-password -X -q -A -t -F "$tab" -d "$db" -c "$2")
  for row in $rows; do printf '%s\t%s\n' "$db" "$row"; done
done"""
PG_COUNTS = (
    "SELECT table_schema || '.' || table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c "
    "FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
PG_EXTENSIONS = "SELECT extname, extversion FROM pg_extension"
# each table's and index's files, in bytes (a table's with its TOAST table's): what pg_upgrade --link, --clone or --swap
# carries over as it is, read from the catalog and a stat of each file (no row is read: the same at any size)
PG_FILE_SIZES = (
    "SELECT n.nspname || '.' || c.relname, pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, "
    "0)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'i') AND "
    "c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE "
    "'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1"
)
# each table's rows as a count and an order-free sum of 64-bit row hashes: one pass, no sort (a digest of sorted md5s
# took most of a cutover's time at 256 MiB); what `dbstate rollback` compares to tell a write made since the cutover
PG_DIGESTS = (
    "SELECT table_schema || '.' || table_name, (xpath('/row/d/text()', query_to_xml(format('SELECT count(*) || '':'' "
    "|| coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) AS d FROM %I.%I t', table_schema, table_name), "
    "false, true, '')))[1]::text FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema "
    "NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


class PgCounter:
    """Counts the rows of each `COPY ... FROM stdin;` block of a plain pg_dumpall stream, per database, as it
    passes: the data lines between the COPY line and the line `\\.` (a row is one line: COPY escapes newlines)."""

    CONNECT = re.compile(rb"^\\connect\s+(?:-reuse-previous=on\s+)?(.*)$")
    COPY = re.compile(rb'^COPY\s+((?:"(?:[^"]|"")*"|[^\s(]+)(?:\.(?:"(?:[^"]|"")*"|[^\s(]+))?)\s')

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.databases: list[str] = []
        self.database = "postgres"
        self._copy: str | None = None
        self._rest = b""

    def feed(self, chunk: bytes) -> None:
        data = self._rest + chunk
        pos, n = 0, len(data)
        while pos < n:
            if self._copy is not None:
                if data.startswith(b"\\.\n", pos):
                    self._copy, pos = None, pos + 3
                    continue
                end = data.find(b"\n\\.\n", pos)
                if end < 0:
                    last = data.rfind(b"\n", pos)
                    if last < 0:
                        break
                    self.counts[self._copy] += data.count(b"\n", pos, last + 1)
                    pos = last + 1
                    break
                self.counts[self._copy] += data.count(b"\n", pos, end + 1)
                self._copy, pos = None, end + 4
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            self._line(data[pos:nl])
            pos = nl + 1
        self._rest = data[pos:]

    def _line(self, line: bytes) -> None:
        m = self.CONNECT.match(line)
        if m:
            self.database = _connect_target(m.group(1).decode(errors="replace"))
            if self.database not in self.databases and self.database not in ("template1", "template0"):
                self.databases.append(self.database)
            return
        m = self.COPY.match(line)
        if m and line.endswith(b"FROM stdin;"):
            self._copy = f"{self.database}/{_unquote_dotted(m.group(1).decode(errors='replace'))}"
            self.counts.setdefault(self._copy, 0)


def _connect_target(arg: str) -> str:
    """`\\connect app`, `\\connect "my db"` or `\\connect -reuse-previous=on "dbname='app'"`."""
    arg = arg.strip()
    m = re.search(r"dbname='((?:[^'\\]|\\.|'')*)'", arg)
    if m:
        return m.group(1).replace("''", "'").replace("\\'", "'").replace("\\\\", "\\")
    if arg.startswith('"') and arg.endswith('"'):
        return arg[1:-1].replace('""', '"')
    return arg.split()[0] if arg else "postgres"


def _unquote_dotted(name: str) -> str:
    parts, cur, quoted, i = [], "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == '"':
            if quoted and name[i + 1 : i + 2] == '"':
                cur, i = cur + '"', i + 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return ".".join(parts)


def pg_major(server_version_num: str) -> str:
    """`150004` -> "15"; `90624` -> "9.6"."""
    n = int(server_version_num.strip())
    return str(n // 10000) if n >= 100000 else f"{n // 10000}.{n // 100 % 100}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scram_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    """What PostgreSQL stores of a SCRAM-SHA-256 password (RFC 5802:
    `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), which `PASSWORD '...'` accepts as it is. A
    password beyond ASCII would need SASLprep first: it is sent as it is, and the server makes the verifier."""
    if not password.isascii():
        return password
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    stored = b64(hashlib.sha256(client_key).digest()).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${stored}:{b64(server_key).decode()}"


class Postgres(Database):
    engine = spec.Engine.POSTGRES
    family = "postgres"
    image_words: tuple[str, ...] = ("postgres", "timescale")
    port = 5432
    auth_methods = frozenset({"scram-sha-256", "md5"})
    password_env: tuple[str, ...] = ("POSTGRES_PASSWORD",)
    image_version_env: tuple[str, ...] = ("PG_MAJOR", "PG_VERSION")
    tool = "psql"
    data_path = "/var/lib/postgresql/data"
    exporter = Exporter(
        "postgres_exporter",
        "prometheus-postgres-exporter",
        9187,
        "pg_up",
        "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
    )

    def exporter_env(self, address: str, port: int, user: str | None, password: str) -> dict[str, str]:
        return {
            "DATA_SOURCE_URI": f"{address}:{port}/postgres?sslmode=disable",
            "DATA_SOURCE_USER": user or "postgres",
            "DATA_SOURCE_PASS": password,
        }

    def monitor_login(self, who: Login, user: str, password: str) -> tuple[list[str], bytes]:
        # pg_monitor (PostgreSQL 10+) reads every statistics view and nothing of the data; a connection limit keeps
        # a stuck exporter from taking the server's slots
        # `user` is a plain name (spec.Monitoring.user: letters, digits, _), the password a quoted literal: its SCRAM
        # verifier, so that not even the server's statement log can hold the password
        # (its salt derived from the login: the same password gives the same verifier, set again it changes nothing)
        salt = hmac.new(password.encode(), f"dbstate salt {user}".encode(), hashlib.sha256).digest()[:16]
        role, secret = f'"{user}"', "'" + scram_verifier(password, salt).replace("'", "''") + "'"
        sql = (
            f"SELECT 'CREATE ROLE {role}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') "  # noqa: S608
            "\\gexec\n"
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 3 "
            f"PASSWORD {secret};\n"
            f"GRANT pg_monitor TO {role};\n"
        )
        return ["psql", "--no-password", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres"], sql.encode()

    def checks(self, s: spec.DatabaseInstanceSpec) -> list[tuple[tuple[str | int, ...], str]]:
        if (versions.numbers(s.version) or [0])[0] < 18:
            return []
        return [
            (
                ("spec", "volumes", i, "target"),
                "PostgreSQL 18 and later images keep their data in /var/lib/postgresql/18/docker: mount the volume at "
                "/var/lib/postgresql (a volume at /var/lib/postgresql/data would hold nothing)",
            )
            for i, v in enumerate(s.volumes)
            if v.target.rstrip("/") == "/var/lib/postgresql/data"
        ]

    def guess_auth(self, env: Mapping[str, str], declared_env: Mapping[str, str]) -> Guess:
        # the image's own env counts too: it set the user and database the entrypoint made
        auth: dict[str, object] = {"method": "scram-sha-256", "user": env.get("POSTGRES_USER") or "postgres"}
        if env.get("POSTGRES_DB"):
            auth["database"] = env["POSTGRES_DB"]
        if "POSTGRES_PASSWORD" in declared_env:
            auth["password"] = declared_env["POSTGRES_PASSWORD"]
        return Guess(auth, ("auth.method guessed (scram-sha-256 is PostgreSQL's default since 14); a probe checks it",))

    def own_credentials(self, env: Mapping[str, str]) -> tuple[str, str | None, Secret | None, str | None]:
        user = env.get("POSTGRES_USER") or "postgres"
        password = Secret(env["POSTGRES_PASSWORD"]) if env.get("POSTGRES_PASSWORD") else None
        return "scram-sha-256", user, password, env.get("POSTGRES_DB") or user

    def fallback_database(self, auth: spec.Auth) -> str | None:
        return None if auth.database == "postgres" else "postgres"

    def rebuild_statistics(self, who: Login) -> list[str] | None:
        # in stages: usable statistics within seconds, complete ones later (what pg_upgrade itself advises)
        return ["vacuumdb", "--all", "--analyze-in-stages", "--quiet"]

    def login(self, inst: spec.DatabaseInstance) -> Login:
        user = env_plain(inst, "POSTGRES_USER") or inst.spec.auth.user or "postgres"
        pw = env_secret(inst, "POSTGRES_PASSWORD") or declared_password(inst)
        return Login(user, {"PGUSER": user, "PGDATABASE": "postgres"} | ({"PGPASSWORD": pw} if pw else {}), "postgres")

    def scratch(self, who: Login, password: str) -> tuple[Login, dict[str, str]]:
        user = who.user or "postgres"
        login = Login(user, {"PGUSER": user, "PGDATABASE": "postgres", "PGPASSWORD": password}, "postgres")
        return login, {"POSTGRES_USER": user, "POSTGRES_PASSWORD": password}

    def ready_argv(self, who: Login) -> list[str]:
        return ["pg_isready", "-q", "-h", "127.0.0.1"]

    def server_version(self, who: Login, query: Query) -> str:
        return pg_major(query(self.sql_argv(who, PG_VERSION)))

    def _each_database(self, who: Login, query: Query, sql: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in query(["sh", "-c", PG_EACH_DATABASE, "sh", PG_DATABASES, sql]).splitlines():
            db, _, row = line.partition("\t")
            key, _, value = row.rpartition("\t")
            if key:
                out[f"{db}/{key}"] = value
        return out

    def counts(self, who: Login, query: Query) -> dict[str, int]:
        return {k: int(v) for k, v in self._each_database(who, query, PG_COUNTS).items() if v.strip().isdigit()}

    def digests(self, who: Login, query: Query) -> dict[str, str]:
        return self._each_database(who, query, PG_DIGESTS)

    def file_sizes(self, who: Login, query: Query) -> dict[str, int]:
        """Each relation's files in bytes (`DATABASE/schema.name`): PG_FILE_SIZES."""
        return {k: int(v) for k, v in self._each_database(who, query, PG_FILE_SIZES).items() if v.strip().isdigit()}

    def extensions(self, who: Login, query: Query) -> set[str]:
        return {key.split("/", 1)[1] for key in self._each_database(who, query, PG_EXTENSIONS)}

    def available_extensions(self, who: Login, query: Query) -> set[str] | None:
        out = query(self.sql_argv(who, "SELECT name FROM pg_available_extensions"))
        return {line.strip() for line in out.splitlines() if line.strip()}

    def dump_argv(self, who: Login) -> list[str]:
        return ["sh", "-c", PG_DUMP, "sh"]

    def restore_argv(self, who: Login) -> list[str]:
        return ["psql", "--no-password", "-q", "-X", "-v", "ON_ERROR_STOP=0", "-d", "postgres"]

    def sql_argv(self, who: Login, sql: str, database: str = "") -> list[str]:
        return ["psql", "--no-password", "-X", "-q", "-A", "-t", "-F", "\t", "-d", database or "postgres", "-c", sql]

    def restore_errors(self, stderr: str) -> list[str]:
        # the server's errors, and psql's own (a restricted meta-command, say), but for the expected ones
        lines = [ln for ln in stderr.splitlines() if "ERROR:" in ln or "FATAL:" in ln or PSQL_ERROR.search(ln)]
        return [ln for ln in lines if not PG_EXPECTED.search(ln)]

    def counter(self) -> PgCounter:
        return PgCounter()

    def clear_statements(self, databases: list[str], server_version: str) -> list[tuple[str, str]]:
        """Each database dropped, its sessions ended first; `postgres`, which cannot be dropped, emptied of its
        schemas instead."""
        major = float(server_version)
        out: list[tuple[str, str]] = []
        for db in databases:
            if db == "postgres":
                public = (
                    "CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC"
                    if major >= 15
                    else "CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC"
                )
                drop = (
                    "DO $$DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE "
                    "'pg\\_%' AND nspname <> 'information_schema' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); "
                    "END LOOP; END$$"
                )
                out += [("postgres", drop), ("postgres", public)]
            else:
                out += [
                    (
                        "postgres",
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "  # noqa: S608
                        f"{_literal(db)} AND pid <> pg_backend_pid()",
                    ),
                    ("postgres", f"DROP DATABASE IF EXISTS {_quote(db)}"),
                ]
        return out

    def tool_version_argv(self) -> list[str] | None:
        return ["psql", "--version"]

    def restricts(self, tool_version: str) -> bool:
        return psql_restricts(tool_version)

    def replay_filter(self, key: str | None) -> PgReplay:
        return PgReplay(key)


# -- pg_upgrade (policy.upgrade: pg-upgrade) ---------------------------------------------------------------------------
# The old major's userland (its postgresql tree, share, the architecture's libraries and its loader) is copied from the
# old image into a helper's volume at /x, and run in a helper of the new image through wrappers at the packaged layout
# that exec the old binaries with the old root's own loader and libraries (`--argv0 "$0"`: pg_ctl finds postgres
# beside itself, postgres finds its share and lib directories relative to itself). No special image: the two declared.

PG_TOOLS = "/x"  # where the old major's userland is, in both helpers

# the cluster's facts that a new cluster must share for pg_upgrade: its bootstrap superuser (OID 10), encoding,
# locale (provider, collate, ctype), data checksums and WAL segment size
PG_CLUSTER = (
    "SELECT (SELECT rolname FROM pg_roles WHERE oid = 10), pg_encoding_to_char(encoding), datcollate, datctype, "
    "current_setting('data_checksums'), current_setting('wal_segment_size') "
    "FROM pg_database WHERE datname = 'template0'"
)
# every client session ended (waiting up to 5 s for each to go: 14 and later), so that no commit lands after a count
PG_FENCE = (
    "SELECT count(pg_terminate_backend(pid{wait})) FROM pg_stat_activity "
    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


def fence_sql(major: str) -> str:
    return PG_FENCE.format(wait=", 5000" if int(major) >= 14 else "")


PG_PROVIDER = "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = 'template0'"  # 15 and 16
PG17_PROVIDER = "SELECT datlocprovider, datlocale FROM pg_database WHERE datname = 'template0'"  # 17 on

PG_TRANSPLANT = r"""set -e
m="$OLD_MAJOR" bin="/usr/lib/postgresql/$OLD_MAJOR/bin"
if [ ! -x "$bin/postgres" ]; then
  echo "$OLD_IMAGE has no $bin/postgres: pg-upgrade needs Debian's packaged layout (the official images have it)" >&2
  exit 3
fi
libc=$(ldd "$bin/postgres" | awk '$1 ~ /^libc\.so/ {print $3}')
loader=$(ldd "$bin/postgres" | awk '$1 ~ /ld-linux/ {print $1}')
if [ -z "$libc" ] || [ -z "$loader" ]; then
  echo "$bin/postgres in $OLD_IMAGE is not linked against glibc: pg-upgrade cannot carry it over" >&2
  exit 3
fi
lib=$(dirname "$(readlink -f "$libc")")
r=/x/root w=/x/wrap
mkdir -p "$r/usr/lib" "$r/usr/share" "$r/loader" "$r$(dirname "$lib")" "$w/usr/lib/postgresql/$m/bin" "$w/usr/share"
cp -a /usr/lib/postgresql "$r/usr/lib/"
cp -a /usr/share/postgresql "$r/usr/share/"
cp -a "$lib" "$r$(dirname "$lib")/"
cp -L "$loader" "$r/loader/ld.so"
ln -s "$r/usr/share/postgresql" "$w/usr/share/postgresql"
ln -s "$r/usr/lib/postgresql/$m/lib" "$w/usr/lib/postgresql/$m/lib"
for f in "$bin"/*; do
  n=$(basename "$f")
  printf '#!/bin/sh\nexec %s --library-path %s --argv0 "$0" %s "$@"\n' "$r/loader/ld.so" "$r$lib" \
    "$r/usr/lib/postgresql/$m/bin/$n" > "$w/usr/lib/postgresql/$m/bin/$n"
  chmod 755 "$w/usr/lib/postgresql/$m/bin/$n"
done
echo "copied $(du -sm "$r" | cut -f1) MiB of $OLD_IMAGE: $("$w/usr/lib/postgresql/$m/bin/postgres" -V)"
"""

# In a helper of the new image, as the old data's owner, in two steps. $STEP prepare, while the old server still
# serves: the old binaries must run in the new image, and a new cluster is made (as the image's entrypoint makes one,
# with the old cluster's facts: PG_CLUSTER) in PG_STAGE at the top of the new volume. $STEP upgrade, the old server
# stopped: pg_upgrade with $TRANSFER (its consistency checks first, as `--check` runs them: exit 5 when one fails,
# nothing changed), then the old cluster's pg_hba.conf, pg_ident.conf and postgresql.auto.conf carried over, and the
# new cluster handed to the new image's postgres user. A volume that holds only PG_STAGE holds an upgrade that was
# never installed (PG_INSTALL), which nothing ever started: a later attempt clears it and starts over. The install is a
# helper of its own, started by dbstate only: a helper left at work by a killed dbstate finishes pg_upgrade, never the
# install, so what it leaves is cleared by the next attempt rather than taken for a cluster that may have served.
PG_STAGE = ".dbstate-upgrading"
PG_UPGRADE = r"""set -e
old="/x/wrap/usr/lib/postgresql/$OLD_MAJOR/bin" new="/usr/lib/postgresql/$NEW_MAJOR/bin" stage="$NEW_ROOT/$STAGE"
say() { echo "$*" >&2; }
[ -x "$new/pg_upgrade" ] || { say "$NEW_IMAGE has no $new/pg_upgrade (Debian's packaged layout)"; exit 3; }
"$old/postgres" -V >/dev/null || { say "the old binaries copied from $OLD_IMAGE do not run in $NEW_IMAGE"; exit 3; }
[ -f "$OLD_DATA/PG_VERSION" ] || { say "no cluster in $OLD_DATA"; exit 3; }
ou=$(stat -c %u "$OLD_DATA") og=$(stat -c %g "$OLD_DATA")
getent group "$og" >/dev/null || echo "pgold:x:$og:" >> /etc/group
getent passwd "$ou" >/dev/null || echo "pgold:x:$ou:$og::/tmp:/bin/sh" >> /etc/passwd
as() { setpriv --reuid="$ou" --regid="$og" --clear-groups "$@"; }
cd /tmp
if [ "$STEP" = prepare ]; then
  mkdir -p "$stage" && chown "$ou:$og" "$stage" && chmod 700 "$stage"
  set -- -D "$stage" -U "$SUPERUSER" -E "$ENCODING" --lc-collate="$LC_COLLATE" --lc-ctype="$LC_CTYPE" --auth=trust
  case "$PROVIDER" in
    i) set -- "$@" --locale-provider=icu --icu-locale="$PROVIDER_LOCALE" ;;
    b) set -- "$@" --locale-provider=builtin --builtin-locale="$PROVIDER_LOCALE" ;;
  esac
  [ "$CHECKSUMS" = on ] && set -- "$@" --data-checksums
  [ "$CHECKSUMS" = off ] && [ "$NEW_MAJOR" -ge 18 ] && set -- "$@" --no-data-checksums
  [ -n "$WAL_SEGSIZE" ] && set -- "$@" --wal-segsize="$WAL_SEGSIZE"
  as "$new/initdb" "$@" > /tmp/initdb.log 2>&1 || { cat /tmp/initdb.log >&2; say "initdb failed"; exit 4; }
  echo "$("$old/postgres" -V) runs here; a new $NEW_MAJOR cluster made with $ENCODING, $LC_COLLATE"
  exit 0
fi
if ! as "$new/pg_upgrade" -b "$old" -B "$new" -d "$OLD_DATA" -D "$stage" -U "$SUPERUSER" "--$TRANSFER" \
    > /tmp/pg_upgrade.log 2>&1; then
  tail -n 25 /tmp/pg_upgrade.log >&2
  for f in "$stage"/pg_upgrade_output.d/*/*.txt; do [ -f "$f" ] && head -n 20 "$f" >&2; done
  # the statement that failed, from the log pg_upgrade names (a role's password hash in it masked)
  log=$(sed -n 's/.*Consult the last few lines of "\(.*\)" for.*/\1/p' /tmp/pg_upgrade.log | tail -n 1)
  if [ -n "$log" ] && [ -f "$log" ]; then
    say "in $(basename "$log"):"
    { grep -m 3 -A 2 -E "error|ERROR|FATAL" "$log" || tail -n 8 "$log"; } |
      sed "s/PASSWORD '[^']*'/PASSWORD '***'/g" >&2
  fi
  grep -q "^Performing Upgrade" /tmp/pg_upgrade.log || { say "pg_upgrade's consistency checks failed"; exit 5; }
  say "pg_upgrade failed"
  exit 6
fi
for f in pg_hba.conf pg_ident.conf postgresql.auto.conf; do
  [ -f "$OLD_DATA/$f" ] && cp "$OLD_DATA/$f" "$stage/$f"
done
printf "listen_addresses = '*'\n" >> "$stage/postgresql.conf"
nu=$(id -u postgres) ng=$(id -g postgres)
[ "$nu:$ng" = "$ou:$og" ] || chown -R "$nu:$ng" "$stage"
echo "pg_upgrade --$TRANSFER done: $(du -sm "$stage" | cut -f1) MiB in the new cluster"
"""

# The upgraded cluster moved from PG_STAGE to where the new image looks for it ($NEW_DATA: the volume's top, or a
# directory below it such as 18/docker); renames within one filesystem, instant at any size.
PG_INSTALL = r"""set -e
stage="$NEW_ROOT/$STAGE"
if [ "$NEW_DATA" = "$NEW_ROOT" ]; then
  find "$stage" -mindepth 1 -maxdepth 1 -exec mv -t "$NEW_ROOT" {} +
  chown "$(stat -c %u:%g "$stage")" "$NEW_ROOT" && chmod 700 "$NEW_ROOT" && rmdir "$stage"
else
  mkdir -p "$(dirname "$NEW_DATA")" && mv "$stage" "$NEW_DATA"
fi"""

# After a failed --link or --swap that never started the new server: the old cluster made startable again (pg_upgrade
# renamed its pg_control so that it cannot start by mistake beside the new one).
PG_UNLINK = r"""d="$OLD_DATA/global"
if [ -f "$d/pg_control.old" ] && [ ! -f "$d/pg_control" ]; then mv "$d/pg_control.old" "$d/pg_control"; fi"""


def data_dir(major: str, env: Mapping[str, str], mount_target: str) -> str:
    """Where the cluster lies inside the volume mounted at `mount_target`: "" (its root) or a subdirectory, e.g.
    `18/docker` for PostgreSQL 18's images (PGDATA below the mount)."""
    default = "/var/lib/postgresql/data" if int(major) < 18 else f"/var/lib/postgresql/{major}/docker"
    pgdata = (env.get("PGDATA") or default).rstrip("/")
    target = mount_target.rstrip("/")
    if pgdata == target:
        return ""
    if not pgdata.startswith(target + "/"):
        raise ValueError(f"PGDATA {pgdata} is not inside the data volume's mount {target}")
    return pgdata[len(target) + 1 :]


def cluster_env(cluster_row: str, provider_row: str) -> dict[str, str]:
    """The helper's environment from the old server's answers to PG_CLUSTER and its provider query."""
    superuser, encoding, collate, ctype, checksums, walseg = [*cluster_row.split("\t"), *[""] * 6][:6]
    provider, locale = [*provider_row.split("\t"), "", ""][:2]
    wal = re.match(r"^(\d+)MB$", walseg.strip())
    return {
        "SUPERUSER": superuser.strip(),
        "ENCODING": encoding.strip(),
        "LC_COLLATE": collate.strip(),
        "LC_CTYPE": ctype.strip(),
        "CHECKSUMS": checksums.strip(),
        "WAL_SEGSIZE": wal.group(1) if wal else "",
        "PROVIDER": provider.strip() or "c",
        "PROVIDER_LOCALE": locale.strip(),
    }


POSTGRES = Postgres()
