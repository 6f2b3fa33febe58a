"""What a pg_upgrade cutover measures on the old server and checks on the new one, with a stand-in for the servers'
answers (the upgrades themselves run against real servers in tests/e2e/test_pg_upgrade.py)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core import errors, spec
from controller.core.databases import Ran
from controller.core.databases.postgres import PG_COUNTS, PG_DATABASES, PG_EACH_DATABASE, PG_FILE_SIZES
from controller.engine.pg_upgrading import _old_sub, _PgUpgrade


class Answers:
    """A server as psql answers it, in its one database `app`: the two queries a check asks of every database."""

    def __init__(self, files: dict[str, int], rows: dict[str, int]) -> None:
        self.files, self.rows = files, rows
        self.asked: list[str] = []

    def run(self, container: str, argv: list[str], env: Any = None, user: Any = None, **_: Any) -> Ran:
        assert argv[:3] == ["sh", "-c", PG_EACH_DATABASE] and argv[4] == PG_DATABASES
        self.asked.append(argv[5])
        table = {PG_FILE_SIZES: self.files, PG_COUNTS: self.rows}[argv[5]]
        return Ran(0, "".join(f"app\t{k}\t{v}\n" for k, v in table.items()).encode())


def job(transfer: spec.UpgradeTransfer, shell: Answers) -> _PgUpgrade:
    inst = spec.DatabaseInstance.model_validate(
        {
            "apiVersion": "dbstate.io/v1",
            "kind": "DatabaseInstance",
            "metadata": {"name": "pg"},
            "spec": {
                "engine": "postgres",
                "version": "17",
                "image": "postgres:17",
                "containerName": "pg-db",
                "networks": [{"name": "n"}],
                "auth": {"method": "none"},
            },
        }
    )
    return _PgUpgrade(inst, None, "pg-db.kept", ["v17"], None, shell, None, print, transfer=transfer)  # type: ignore[arg-type]


FILES = {"public.t": 8192 * 1000, "public.t_pkey": 8192 * 300}


@pytest.mark.parametrize("transfer", list(spec.UpgradeTransfer))
def test_every_transfer_is_checked_by_the_files_sizes_and_reads_no_row(transfer) -> None:
    old = Answers(FILES, {})
    before = job(transfer, old).measure()
    assert before == {"app/public.t": 8192000, "app/public.t_pkey": 2457600}
    new = Answers(dict(FILES), {})
    said = job(transfer, new).check(before)
    assert said == "2 tables' and indexes' files (10 MiB) checked"
    assert PG_COUNTS not in old.asked + new.asked  # no count(*): the downtime does not grow with the data


def test_a_file_cut_short_or_lost_fails_the_check_naming_it() -> None:
    before = job(spec.UpgradeTransfer.LINK, Answers(FILES, {})).measure()
    short = Answers({"public.t": 8192 * 999}, {})
    with pytest.raises(errors.BackupError) as e:
        job(spec.UpgradeTransfer.LINK, short).check(before)
    assert str(e.value) == (
        "files differ from the old server's: app/public.t: 8192000 bytes before, 8183808 after; "
        "app/public.t_pkey: 2457600 bytes before, missing after"
    )


def test_the_old_cluster_is_found_at_the_declared_pgdata_or_where_the_old_major_keeps_it() -> None:
    # the declared PGDATA, when it lies in the old mount (a custom subdirectory)
    assert _old_sub("15", {"PGDATA": "/var/lib/postgresql/data/pgdata"}, "/var/lib/postgresql/data") == "pgdata"
    # 18's PGDATA is not in 17's mount: 17's images kept the cluster at the mount itself
    assert _old_sub("17", {"PGDATA": "/var/lib/postgresql/18/docker"}, "/var/lib/postgresql/data") == ""
