"""The dump counters read the rows a dump holds however the stream is cut into chunks; logins keep secrets off argv
(each engine's module: core/databases)."""

from __future__ import annotations

import pytest

from controller.core import databases, dumps, spec
from controller.core.databases import mariadb, postgres, redis
from tests.helpers import SECRET

PG_DUMP = b"""--
-- PostgreSQL database cluster dump
--
CREATE ROLE "app";
\\connect template1
\\connect "app"
CREATE TABLE "public"."marker" (id integer, note text);
COPY "public"."marker" ("id", "note") FROM stdin;
1\trow 1\\nwith newline
2\t\\\\.
3\t\\N
\\.
COPY "public"."empty" ("x") FROM stdin;
\\.
\\connect -reuse-previous=on "dbname='my db'"
COPY "s2"."Odd \"\"Name\"\"" ("x") FROM stdin;
1
2
\\.
"""

MARIADB_OLD = b"""USE `app`;
CREATE TABLE `marker` (id int);
INSERT INTO `marker` VALUES (1,'a\\'b),(c'),(2,'x\\\\y'),(3,NULL);
CREATE TABLE `empty` (id int);
USE `mysql`;
INSERT INTO `user` VALUES ('root','x');
"""

MARIADB_NEW = b"""USE `app`;
CREATE TABLE `marker` (id int);
INSERT INTO `marker` VALUES
(1,'a\\'b),(c'),
(2,'x\\\\y'),
(3,NULL);
USE `mysql`;
INSERT INTO `global_priv` VALUES
('localhost','root','{}');
USE `other`;
INSERT INTO `t` VALUES
(0x00FF);
"""


def feed_in_pieces(counter: postgres.PgCounter | mariadb.MariadbCounter, data: bytes, size: int) -> None:
    for i in range(0, len(data), size):
        counter.feed(data[i : i + size])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 100000])
def test_pg_counter_counts_copy_rows_whatever_the_chunks(size: int) -> None:
    c = postgres.PgCounter()
    feed_in_pieces(c, PG_DUMP, size)
    assert c.counts == {"app/public.marker": 3, "app/public.empty": 0, 'my db/s2.Odd "Name"': 2}
    assert c.databases == ["app", "my db"]


@pytest.mark.parametrize("dump", [MARIADB_OLD, MARIADB_NEW])
@pytest.mark.parametrize("size", [1, 4, 9, 100000])
def test_mariadb_counter_counts_tuples_of_both_dump_formats(dump: bytes, size: int) -> None:
    c = mariadb.MariadbCounter()
    feed_in_pieces(c, dump, size)
    want = {"app/marker": 3}
    if dump is MARIADB_OLD:
        want["app/empty"] = 0
    else:
        want["other/t"] = 1
    assert c.counts == want  # never the system schemas
    assert "mysql" not in c.databases


def test_compare_counts_names_each_difference() -> None:
    assert dumps.compare_counts({"a": 1}, {"a": 1}) == []
    assert dumps.compare_counts({"a": 1, "b": 2}, {"a": 0, "c": 1}) == [
        "a: 1 in the backup, 0 restored",
        "b: 2 in the backup, missing restored",
        "c: missing in the backup, 1 restored",
    ]


def test_versions_and_redis_check_output() -> None:
    assert postgres.pg_major("150004\n") == "15"
    assert postgres.pg_major("90624") == "9.6"
    assert redis.keys_read("[offset 0] Checking RDB file x\n[info] 3 keys read\n") == 3
    assert redis.keys_read("--- RDB ERROR DETECTED ---") is None
    info = "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=9\r\n"
    assert redis.keyspace(info) == 7 and redis.keyspace("# Keyspace\n") == 0


def _inst(engine: str, env: str, auth: str) -> spec.DatabaseInstance:
    return spec.DatabaseInstance.model_validate(
        {
            "apiVersion": "dbstate.io/v1",
            "kind": "DatabaseInstance",
            "metadata": {"name": "db"},
            "spec": {
                "engine": engine,
                "version": "15",
                "image": "x:1",
                "networks": [{"name": "n"}],
                "env": env,
                "auth": auth,
            },
        }
    )


def test_logins_put_the_password_in_the_environment_never_in_argv() -> None:
    from controller.core.secrets import Secret

    pg = _inst(
        "postgres",
        {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": Secret(SECRET)},  # type: ignore[arg-type]
        {"method": "scram-sha-256", "user": "other", "password": Secret("x")},  # type: ignore[arg-type]
    )
    who = databases.of(spec.Engine.POSTGRES).login(pg)
    assert who.user == "app" and who.env["PGPASSWORD"] == SECRET
    my = _inst("mariadb", {"MARIADB_ROOT_PASSWORD": Secret(SECRET)}, {"method": "password", "user": "app"})  # type: ignore[arg-type]
    who_my = databases.of(spec.Engine.MARIADB).login(my)
    assert who_my.user == "root" and who_my.env == {"MYSQL_PWD": SECRET}
    for engine, w in ((spec.Engine.POSTGRES, who), (spec.Engine.MARIADB, who_my)):
        db = databases.of(engine)
        for argv in (db.dump_argv(w), db.restore_argv(w), db.sql_argv(w, "SELECT 1")):
            assert SECRET not in " ".join(argv)
    assert SECRET not in repr(who)
    kv = _inst("redis", {}, {"method": "password", "password": Secret(SECRET)})  # type: ignore[arg-type]
    who_kv = databases.of(spec.Engine.REDIS).login(kv)
    assert who_kv.env == {"REDISCLI_AUTH": SECRET}
    assert SECRET not in " ".join(redis.REDIS.cli_argv("BGSAVE", "SCHEDULE"))


def test_restore_errors_tolerate_only_what_a_fresh_server_already_has() -> None:
    stderr = (
        'psql:<stdin>:14: ERROR:  role "app" already exists\npsql:<stdin>:20: ERROR:  relation "t" does not exist\n'
    )
    assert databases.of(spec.Engine.POSTGRES).restore_errors(stderr) == [
        'psql:<stdin>:20: ERROR:  relation "t" does not exist'
    ]
