"""The registry of database engine modules: each engine's module is loaded when first asked for, and each one says
the facts of its standard exporter (what issue-25's managed exporters are built from)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from controller.core import databases, spec


def test_a_module_is_loaded_only_when_its_engine_is_asked_for():
    code = (
        "import sys\n"
        "from controller.core import databases\n"
        "before = sorted(m for m in sys.modules if m.startswith('controller.core.databases.'))\n"
        "databases.of('postgres')\n"
        "after = sorted(m for m in sys.modules if m.startswith('controller.core.databases.'))\n"
        "print(before, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == (
        "['controller.core.databases.base'] ['controller.core.databases.base', 'controller.core.databases.postgres']"
    )


def test_every_engine_is_registered_and_known_by_its_name():
    assert sorted(d.engine.value for d in databases.every()) == sorted(e.value for e in spec.Engine)
    for engine in spec.Engine:
        assert databases.of(engine.value).engine is engine


@pytest.mark.parametrize(
    ("engine", "exporter", "port", "up"),
    [
        ("postgres", "postgres_exporter", 9187, "pg_up"),
        ("mariadb", "mysqld_exporter", 9104, "mysql_up"),
        ("mysql", "mysqld_exporter", 9104, "mysql_up"),
        ("redis", "redis_exporter", 9121, "redis_up"),
        ("valkey", "redis_exporter", 9121, "redis_up"),
    ],
)
def test_each_engine_names_its_standard_exporter(engine, exporter, port, up):
    facts = databases.of(engine).exporter
    assert facts is not None
    assert (facts.name, facts.port, facts.up_metric) == (exporter, port, up)
    assert facts.package == "prometheus-" + exporter.replace("_", "-")


@pytest.mark.parametrize("engine", [e.value for e in spec.Engine])
def test_the_exporters_login_is_in_its_environment_and_names_the_server(engine):
    env = databases.of(engine).exporter_env("pg-db", 5555, "monitor", "s3cret-pw")
    assert any("s3cret-pw" in v for v in env.values())
    assert any("pg-db:5555" in v for v in env.values())


def test_pg_upgrade_finds_the_cluster_in_its_volume_and_reads_the_old_clusters_facts():
    from controller.core.databases import postgres

    assert postgres.data_dir("15", {}, "/var/lib/postgresql/data") == ""
    assert postgres.data_dir("18", {}, "/var/lib/postgresql/") == "18/docker"  # 18's images: PGDATA below the mount
    assert (
        postgres.data_dir("16", {"PGDATA": "/var/lib/postgresql/data/pgdata"}, "/var/lib/postgresql/data") == "pgdata"
    )
    with pytest.raises(ValueError, match="not inside"):
        postgres.data_dir("16", {"PGDATA": "/srv/pg"}, "/var/lib/postgresql/data")
    env = postgres.cluster_env("app\tUTF8\ten_US.UTF-8\ten_US.UTF-8\ton\t64MB", "i\tund-x-icu")
    assert env == {
        "SUPERUSER": "app",
        "ENCODING": "UTF8",
        "LC_COLLATE": "en_US.UTF-8",
        "LC_CTYPE": "en_US.UTF-8",
        "CHECKSUMS": "on",
        "WAL_SEGSIZE": "64",
        "PROVIDER": "i",
        "PROVIDER_LOCALE": "und-x-icu",
    }
    assert postgres.cluster_env("postgres\tSQL_ASCII\tC\tC\toff\t16MB", "")["PROVIDER"] == "c"  # 14 and older: libc
