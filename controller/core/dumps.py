"""What a logical backup of each database engine is, as data: the engine's own dump and restore tools (argv without a
secret; credentials go in the exec's environment), the manifest that describes a backup, and the counters that read
row counts out of a dump stream as it passes, so that a restore can be checked against what the dump held."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from controller.core import spec
from controller.core.secrets import Secret, reveal

MANIFEST_VERSION = 1
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")

# Each dump and restore runs in the instance's container with `sh -c SCRIPT sh ARGS...`: the script picks the tool
# the image has (mariadb-dump or mysqldump) and never holds a value; ARGS hold names only.
PG_DUMP = 'exec pg_dumpall --no-password --quote-all-identifiers "$@"'
MARIADB_CLIENT = 'if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; exec "$c" "$@"'
MARIADB_DUMP = (
    'if command -v mariadb-dump >/dev/null 2>&1; then c=mariadb-dump; else c=mysqldump; fi; exec "$c" "$@" '
    "--all-databases --single-transaction --routines --events --triggers --hex-blob --default-character-set=utf8mb4"
)
REDIS_CLI = 'exec redis-cli --no-auth-warning "$@"'
# A restore replays a dump: the MariaDB client in --sandbox mode (10.5.25, 10.6.18, 10.11.8, 11.x and newer) runs no
# `system`/`\!`, `source` or `tee` command a dump may have been given.
MARIADB_RESTORE = (
    "if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; "
    'if "$c" --help 2>/dev/null | grep -q -- --sandbox; then set -- --sandbox "$@"; fi; exec "$c" "$@"'
)


@dataclass(frozen=True)
class Ran:
    """A tool run to its end: exit code, stdout, the end of stderr."""

    code: int
    stdout: bytes
    stderr: str = ""


@dataclass(frozen=True)
class Login:
    """Who the dump logs in as: `user` may go on a command line, `env` (with the password) only in the exec's
    environment."""

    user: str | None
    env: Mapping[str, str] = field(repr=False)
    os_user: str = ""  # the container user the tools run as ("" = the image's)


def _env_secret(inst: spec.DatabaseInstance, *names: str) -> str | None:
    for n in names:
        v = inst.spec.env.get(n)
        if v is not None:
            return reveal(v) if isinstance(v, Secret) else str(v)
    return None


def login(inst: spec.DatabaseInstance) -> Login:
    """The superuser of the container's own environment when it has one (a dump needs every database), else the
    probe's login."""
    auth = inst.spec.auth
    pw = reveal(auth.password) if auth.password is not None else None
    engine = inst.spec.engine
    if engine is spec.Engine.POSTGRES:
        user = _env_plain(inst, "POSTGRES_USER") or auth.user or "postgres"
        pw = _env_secret(inst, "POSTGRES_PASSWORD") or pw
        return Login(user, {"PGUSER": user, "PGDATABASE": "postgres"} | ({"PGPASSWORD": pw} if pw else {}), "postgres")
    if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
        root = _env_secret(inst, "MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
        user, pw = ("root", root) if root else (auth.user or "root", pw)
        return Login(user, {"MYSQL_PWD": pw} if pw else {})
    return Login(None, {"REDISCLI_AUTH": pw} if pw else {})


def _env_plain(inst: spec.DatabaseInstance, name: str) -> str | None:
    v = inst.spec.env.get(name)
    return None if v is None or isinstance(v, Secret) else str(v)


def dump_argv(engine: spec.Engine, who: Login) -> list[str]:
    if engine is spec.Engine.POSTGRES:
        return ["sh", "-c", PG_DUMP, "sh"]
    if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
        return ["sh", "-c", MARIADB_DUMP, "sh", "-u", who.user or "root"]
    raise ValueError(f"{engine.value} is backed up with BGSAVE, not a dump command")


def restore_argv(engine: spec.Engine, who: Login) -> list[str]:
    """Reads the plain dump on stdin."""
    if engine is spec.Engine.POSTGRES:
        return ["psql", "--no-password", "-q", "-X", "-v", "ON_ERROR_STOP=0", "-d", "postgres"]
    if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
        return ["sh", "-c", MARIADB_RESTORE, "sh", "-u", who.user or "root", "--default-character-set=utf8mb4"]
    raise ValueError(f"{engine.value} is restored from its RDB file")


def sql_argv(engine: spec.Engine, who: Login, sql: str, database: str = "postgres") -> list[str]:
    """One query whose rows come back tab-separated. The SQL holds names only, never a value from outside."""
    if engine is spec.Engine.POSTGRES:
        return ["psql", "--no-password", "-X", "-q", "-A", "-t", "-F", "\t", "-d", database, "-c", sql]
    return ["sh", "-c", MARIADB_CLIENT, "sh", "-u", who.user or "root", "-N", "-B", "-e", sql]


def redis_argv(*command: str) -> list[str]:
    return ["sh", "-c", REDIS_CLI, "sh", *command]


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
        if line.startswith(b"\\"):
            if self.RESTRICT.match(line):
                return b""
            if self.CONNECT.match(line):
                if self.key is None:
                    return line + b"\n"
                return b"\\unrestrict " + self.key + b"\n" + line + b"\n\\restrict " + self.key + b"\n"
            name = line.split(maxsplit=1)[0][:20].decode(errors="replace")
            self.refused.append(f"line {self._line_no}: {name}")
            return line + b"\n"
        if self.COPY.match(line):
            self._copy = True
        return line + b"\n"


# The restore of a pg_dumpall into a fresh server meets the roles and the database the image made at its first start:
# those errors are expected; any other is a failed restore.
PG_EXPECTED = re.compile(r'ERROR:\s+(role|database) "[^"]+" already exists')
PSQL_ERROR = re.compile(r": error: |^backslash commands are restricted")


def restore_errors(engine: spec.Engine, stderr: str) -> list[str]:
    if engine is spec.Engine.POSTGRES:  # the server's errors, and psql's own (a restricted meta-command, say)
        lines = [ln for ln in stderr.splitlines() if "ERROR:" in ln or "FATAL:" in ln or PSQL_ERROR.search(ln)]
        return [ln for ln in lines if not PG_EXPECTED.search(ln)]
    return [ln for ln in stderr.splitlines() if ln.strip()]


PG_DATABASES = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1"
PG_COUNTS = (
    "SELECT table_schema || '.' || table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c "
    "FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
MARIADB_TABLES = (
    "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
    "table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2"
)
# a digest of each table's rows, whatever their order (PostgreSQL: md5 of the sorted md5 of each row's text)
PG_DIGESTS = (
    "SELECT table_schema || '.' || table_name, (xpath('/row/d/text()', query_to_xml(format('SELECT md5(coalesce("
    "string_agg(md5(t::text), '''' ORDER BY md5(t::text)), '''')) AS d FROM %I.%I t', table_schema, table_name), "
    "false, true, '')))[1]::text FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema "
    "NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)
PG_VERSION = "SHOW server_version_num"
MARIADB_VERSION = "SELECT VERSION()"


def mariadb_counts_sql(tables: list[tuple[str, str]]) -> str:
    def q(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def lit(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"

    # names the server listed, quoted as identifiers and literals: never a value from outside
    parts = [f"SELECT {lit(f'{d}/{t}')}, COUNT(*) FROM {q(d)}.{q(t)}" for d, t in tables]  # noqa: S608
    return " UNION ALL ".join(parts)


def mariadb_checksum_sql(tables: list[tuple[str, str]]) -> str:
    """MariaDB's own digest of each table's rows (`CHECKSUM TABLE`), of names the server listed."""
    return "CHECKSUM TABLE " + ", ".join(
        "`" + d.replace("`", "``") + "`.`" + t.replace("`", "``") + "`" for d, t in tables
    )


def digest_of(lines: dict[str, str]) -> str:
    """One digest of a server's tables ("db/table" -> that table's digest)."""
    import hashlib

    body = "\n".join(f"{k}={v}" for k, v in sorted(lines.items()))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def parse_rows(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, n = line.rpartition("\t")
        if key and n.strip().isdigit():
            out[key] = int(n)
    return out


@dataclass(frozen=True)
class Manifest:
    """What a backup is; written beside its file and never holding a secret (names, sizes, digests, counts)."""

    id: str
    instance: str
    engine: str
    image: str
    server_version: str
    revision: str | None
    file: str
    format: str  # "sql.gz" (PostgreSQL, MariaDB) | "rdb.gz" (Redis)
    size_bytes: int  # of the compressed file
    raw_bytes: int  # of the dump as the tool wrote it
    sha256: str  # of the compressed file
    started: float
    finished: float
    counts: dict[str, int]  # "db/schema.table" (PostgreSQL), "db/table" (MariaDB), "keys" (Redis) -> rows
    databases: list[str] = field(default_factory=list)  # the databases the dump holds (none for Redis)
    reason: str = "manual"  # manual | schedule | before recreate ... | before restore | before upgrade
    verified: float | None = None  # when --verify restored it into a throw-away server and the counts matched
    version: int = MANIFEST_VERSION
    # HMAC-SHA256 of every other field (the file's sha256 among them) with the backup key, which is kept outside the
    # backup directory: a manifest and file changed or made by someone without the key are refused
    signature: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def signed_bytes(self) -> bytes:
        """What the signature covers: the manifest without its signature, canonical JSON."""
        body = {k: v for k, v in self.to_json().items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_verified(self, when: float, counts: Mapping[str, int] | None = None) -> Manifest:
        return replace(self, verified=when, counts=dict(counts) if counts is not None else self.counts)


def compare_counts(want: Mapping[str, int], got: Mapping[str, int]) -> list[str]:
    """The differences, as lines a human reads (empty: equal)."""
    out = []
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key), got.get(key)
        if a != b:
            out.append(
                f"{key}: {'missing' if a is None else a} in the backup, {'missing' if b is None else b} restored"
            )
    return out


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


class MariadbCounter:
    """Counts the rows of the INSERTs of a mariadb-dump stream, per database (`USE` lines) and table: the top-level
    parenthesised tuples once string literals are removed, whether a statement is one line (older dumps) or one
    tuple per line after `VALUES` (MariaDB 10.11 and newer). A string never spans lines: the dump escapes newlines."""

    USE = re.compile(rb"^USE `((?:[^`]|``)+)`;")
    INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES")
    CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)`")
    STRINGS = re.compile(rb"'(?:[^'\\]|\\.|'')*'")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.databases: list[str] = []
        self.database = ""
        self._insert: str | None = None  # the table of the INSERT statement that continues on the next line
        self._rest = b""

    def feed(self, chunk: bytes) -> None:
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line)

    def _tuples(self, key: str, body: bytes) -> None:
        bare = self.STRINGS.sub(b"''", body).rstrip()
        self.counts[key] = self.counts.get(key, 0) + bare.count(b"(")
        self._insert = None if bare.endswith(b";") else key

    def _line(self, line: bytes) -> None:
        if self._insert is not None:
            self._tuples(self._insert, line)
            return
        if line.startswith(b"INSERT INTO "):
            m = self.INSERT.match(line)
            if m and self.database not in SYSTEM_SCHEMAS:
                self._tuples(f"{self.database}/{_unquote_backticks(m.group(1))}", line[m.end() :])
            return
        m = self.USE.match(line)
        if m:
            self.database = _unquote_backticks(m.group(1))
            if self.database not in SYSTEM_SCHEMAS and self.database not in self.databases:
                self.databases.append(self.database)
            return
        m = self.CREATE.match(line)
        if m and self.database not in SYSTEM_SCHEMAS:
            self.counts.setdefault(f"{self.database}/{_unquote_backticks(m.group(1))}", 0)


def _unquote_backticks(name: bytes) -> str:
    return name.decode(errors="replace").replace("``", "`")


def counter(engine: spec.Engine) -> PgCounter | MariadbCounter | None:
    if engine is spec.Engine.POSTGRES:
        return PgCounter()
    if engine in (spec.Engine.MARIADB, spec.Engine.MYSQL):
        return MariadbCounter()
    return None


AOF_REWRITE = r"""set -eu
cd "$1"; rdb=$2; aof=${3:-$4}; dirflag=; [ -n "$3" ] && dirflag="--appenddirname $3"
owner=$(stat -c %u:%g .)
if [ -e "$aof" ]; then rm -rf "$aof.dbstate-before-restore"; mv "$aof" "$aof.dbstate-before-restore"; fi
redis-server --port 6390 --bind 127.0.0.1 --protected-mode no --dir "$1" --dbfilename "$rdb" --save "" \
  --appendonly no $dirflag --appendfilename "$4" --daemonize yes --logfile /tmp/dbstate-aof.log
p() { redis-cli -p 6390 "$@"; }
n=0; until p ping 2>/dev/null | grep -q PONG; do
  n=$((n+1)); [ $n -lt 3000 ] || { tail -5 /tmp/dbstate-aof.log; exit 1; }; sleep 0.2; done
p config set appendonly yes >/dev/null
n=0; until p info persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:0' && \
  p info persistence | tr -d '\r' | grep -q '^aof_rewrite_scheduled:0' && [ -e "$aof" ]; do
  n=$((n+1)); [ $n -lt 18000 ] || { echo "the AOF rewrite did not finish"; exit 1; }; sleep 0.2; done
p info persistence | tr -d '\r' | grep -q '^aof_last_bgrewrite_status:ok' || { echo "the AOF rewrite failed"; exit 1; }
echo "keys: $(p dbsize)"
p shutdown nosave >/dev/null 2>&1 || true
n=0; while p ping >/dev/null 2>&1; do n=$((n+1)); [ $n -lt 300 ] || exit 1; sleep 0.2; done
chown -R "$owner" "$aof" "$rdb"
rm -rf "$aof.dbstate-before-restore"
"""


def redis_aof_rewrite(directory: str, rdb: str, appenddir: str, appendfile: str) -> str:
    """The script a helper runs (as root, no network, on the server's mounts) to make a fresh AOF from a restored RDB:
    `sh -c SCRIPT sh DIR RDB APPENDDIRNAME APPENDFILENAME` (names from the server's own CONFIG GET, quoted)."""
    return _with_args(AOF_REWRITE, directory, rdb, appenddir, appendfile)


def _with_args(script: str, *args: str) -> str:
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    return f"set -- {quoted}\n{script}"


def redis_keyspace(info: str) -> int:
    """The keys of every database that `INFO keyspace` lists (`db0:keys=3,expires=0,avg_ttl=0`)."""
    return sum(
        int(part.split("=", 1)[1])
        for line in info.splitlines()
        if line.startswith("db") and ":" in line
        for part in line.split(":", 1)[1].split(",")
        if part.startswith("keys=")
    )


def redis_keys(check_output: str) -> int | None:
    """The keys `redis-check-rdb` read ("[info] 3 keys read"), or None when it did not say."""
    m = re.search(r"(\d+) keys read", check_output)
    return int(m.group(1)) if m else None


def pg_major(server_version_num: str) -> str:
    """`150004` -> "15"; `90624` -> "9.6"."""
    n = int(server_version_num.strip())
    return str(n // 10000) if n >= 100000 else f"{n // 10000}.{n // 100 % 100}"
