"""MariaDB and MySQL: one module, two engines (the same client and dump, each image's own env); majors are two numbers
(10.11); backed up with mariadb-dump (mysqldump on older images) and replayed with the client in --sandbox mode, its
rows counted as the dump passes (`INSERT` tuples); a new image is followed by mariadb-upgrade, as its documentation
asks."""

from __future__ import annotations

import re
from collections.abc import Mapping

from controller.core import spec
from controller.core.databases.base import (
    Database,
    Exporter,
    Guess,
    Login,
    Query,
    declared_password,
    env_secret,
    parse_rows,
)
from controller.core.secrets import Secret

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
# Each command runs with `sh -c SCRIPT sh ARGS...`: the script picks the tool the image has (mariadb or mysql) and
# never holds a value; ARGS hold names only.
MARIADB_CLIENT = 'if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; exec "$c" "$@"'
MARIADB_DUMP = (
    'if command -v mariadb-dump >/dev/null 2>&1; then c=mariadb-dump; else c=mysqldump; fi; exec "$c" "$@" '
    "--all-databases --single-transaction --routines --events --triggers --hex-blob --default-character-set=utf8mb4"
)
# A restore replays a dump: the MariaDB client in --sandbox mode (10.5.25, 10.6.18, 10.11.8, 11.x and newer) runs no
# `system`/`\!`, `source` or `tee` command a dump may have been given.
MARIADB_RESTORE = (
    "if command -v mariadb >/dev/null 2>&1; then c=mariadb; else c=mysql; fi; "
    'if "$c" --help 2>/dev/null | grep -q -- --sandbox; then set -- --sandbox "$@"; fi; exec "$c" "$@"'
)
MARIADB_UPGRADE = (
    'if command -v mariadb-upgrade >/dev/null 2>&1; then c=mariadb-upgrade; else c=mysql_upgrade; fi; exec "$c" "$@"'
)
MARIADB_VERSION = "SELECT VERSION()"
MARIADB_TABLES = (
    "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
    "table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2"
)


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


class MariaDB(Database):
    engine = spec.Engine.MARIADB
    family = "mysql"
    image_words: tuple[str, ...] = ("mariadb",)
    port = 3306
    auth_methods = frozenset({"password"})
    two_part_versions = True
    greets_with_version = True
    password_env: tuple[str, ...] = ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
    image_version_env: tuple[str, ...] = ("MARIADB_VERSION", "MARIADB_MAJOR")
    tool = "mariadb"
    data_path = "/var/lib/mysql"
    # 0.14 is the last release configured by DATA_SOURCE_NAME alone (0.15 wants --mysqld.address on its command
    # line); Debian 12 ships 0.14
    exporter = Exporter(
        "mysqld_exporter",
        "prometheus-mysqld-exporter",
        9104,
        "mysql_up",
        "prom/mysqld-exporter:v0.14.0",
        ("--collect.info_schema.tables",),  # each schema's size (mysql_info_schema_table_size)
    )

    def exporter_env(self, address: str, port: int, user: str | None, password: str) -> dict[str, str]:
        # DATA_SOURCE_NAME for mysqld_exporter up to 0.14 (Debian 12's); MYSQLD_EXPORTER_PASSWORD from 0.15 on
        return {
            "DATA_SOURCE_NAME": f"{user or 'root'}:{password}@({address}:{port})/",
            "MYSQLD_EXPORTER_PASSWORD": password,
        }

    def monitor_login(self, who: Login, user: str, password: str) -> tuple[list[str], bytes]:
        # the grants mysqld_exporter's README asks for; REPLICATION CLIENT is BINLOG MONITOR's old name, which every
        # MariaDB and MySQL still accepts
        name = "'" + user.replace("'", "''") + "'@'%'"
        secret = "'" + password.replace("\\", "\\\\").replace("'", "''") + "'"
        sql = (
            f"CREATE USER IF NOT EXISTS {name} IDENTIFIED BY {secret} WITH MAX_USER_CONNECTIONS 3;\n"
            f"ALTER USER {name} IDENTIFIED BY {secret} WITH MAX_USER_CONNECTIONS 3;\n"
            f"GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO {name};\n"
            # MariaDB 10.5.9 moved SHOW REPLICA STATUS to a privilege of its own (an executable comment: MySQL skips it)
            f"/*M!100509 GRANT SLAVE MONITOR ON *.* TO {name} */;\n"
        )
        return ["sh", "-c", MARIADB_CLIENT, "sh", "-u", who.user or "root", "-B"], sql.encode()

    def guess_auth(self, env: Mapping[str, str], declared_env: Mapping[str, str]) -> Guess:
        auth: dict[str, object] = {"method": "password", "user": "root"}
        key = next((k for k in self.password_env if k in declared_env), None)
        if key is not None:
            auth["password"] = declared_env[key]
        return Guess(auth)

    def own_credentials(self, env: Mapping[str, str]) -> tuple[str, str | None, Secret | None, str | None]:
        key = next((k for k in ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD") if env.get(k)), None)
        return "password", "root", Secret(env[key]) if key else None, None

    def login(self, inst: spec.DatabaseInstance) -> Login:
        root = env_secret(inst, "MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
        user, pw = ("root", root) if root else (inst.spec.auth.user or "root", declared_password(inst))
        return Login(user, {"MYSQL_PWD": pw} if pw else {})

    def scratch(self, who: Login, password: str) -> tuple[Login, dict[str, str]]:
        return Login("root", {"MYSQL_PWD": password}), {
            "MARIADB_ROOT_PASSWORD": password,
            "MYSQL_ROOT_PASSWORD": password,
        }

    def ready_argv(self, who: Login) -> list[str]:
        return ["sh", "-c", MARIADB_CLIENT, "sh", "-u", who.user or "root", "-h", "127.0.0.1", "-e", "SELECT 1"]

    def server_version(self, who: Login, query: Query) -> str:
        return query(self.sql_argv(who, MARIADB_VERSION)).strip()

    def _tables(self, who: Login, query: Query) -> list[tuple[str, str]]:
        out = query(self.sql_argv(who, MARIADB_TABLES))
        return [(d, t) for d, _, t in (ln.partition("\t") for ln in out.splitlines()) if t]

    def counts(self, who: Login, query: Query) -> dict[str, int]:
        tables = self._tables(who, query)
        return parse_rows(query(self.sql_argv(who, mariadb_counts_sql(tables)))) if tables else {}

    def digests(self, who: Login, query: Query) -> dict[str, str]:
        tables = self._tables(who, query)
        if not tables:
            return {}
        out = query(self.sql_argv(who, mariadb_checksum_sql(tables)))
        return {k: v for k, _, v in (ln.rpartition("\t") for ln in out.splitlines()) if k}

    after_new_image_tool = "mariadb-upgrade"

    def after_new_image(self, who: Login) -> list[str] | None:
        return ["sh", "-c", MARIADB_UPGRADE, "sh", "-u", who.user or "root"]

    def dump_argv(self, who: Login) -> list[str]:
        return ["sh", "-c", MARIADB_DUMP, "sh", "-u", who.user or "root"]

    def restore_argv(self, who: Login) -> list[str]:
        return ["sh", "-c", MARIADB_RESTORE, "sh", "-u", who.user or "root", "--default-character-set=utf8mb4"]

    def sql_argv(self, who: Login, sql: str, database: str = "") -> list[str]:
        return ["sh", "-c", MARIADB_CLIENT, "sh", "-u", who.user or "root", "-N", "-B", "-e", sql]

    def counter(self) -> MariadbCounter:
        return MariadbCounter()

    def clear_statements(self, databases: list[str], server_version: str) -> list[tuple[str, str]]:
        return [("", "DROP DATABASE IF EXISTS `" + db.replace("`", "``") + "`") for db in databases]


class MySQL(MariaDB):
    engine = spec.Engine.MYSQL
    image_words: tuple[str, ...] = ("mysql", "percona")
    password_env: tuple[str, ...] = ("MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD")
    image_version_env: tuple[str, ...] = ("MYSQL_VERSION", "MYSQL_MAJOR")


MARIADB = MariaDB()
MYSQL = MySQL()
