"""The backup directory on a real filesystem: a manifest is data someone may have written by hand, so its paths are
confined to the directory (a prune never deletes a file outside it), a field of the wrong type is a manifest that is
not listed (never a crash of `dbstate backups`), and only manifests the key signed are counted by a prune."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from controller.adapters.backups import BackupDir
from controller.core import errors
from controller.core.dumps import Manifest


def manifest(ident: str, started: float, **changes: object) -> Manifest:
    m = Manifest(
        id=ident,
        instance="pg",
        engine="postgres",
        image="postgres:15",
        server_version="15.4",
        revision=None,
        file=f"{ident}.sql.gz",
        format="sql.gz",
        size_bytes=3,
        raw_bytes=3,
        sha256="0" * 64,
        started=started,
        finished=started + 1,
        counts={"app/public.t": 1},
    )
    return Manifest.from_json({**m.to_json(), **changes})


def taken(d: BackupDir, ident: str, started: float) -> Manifest:
    (d.root / "pg").mkdir(parents=True, exist_ok=True)
    (d.root / "pg" / f"{ident}.sql.gz").write_bytes(b"abc")
    return d.save(manifest(ident, started))


def planted(d: BackupDir, name: str, body: dict[str, object]) -> None:
    (d.root / "pg").mkdir(parents=True, exist_ok=True)
    (d.root / "pg" / name).write_text(json.dumps(body))


@pytest.fixture
def backups(tmp_path: Path) -> BackupDir:
    return BackupDir(tmp_path / "backups", tmp_path / "backup.key")


@pytest.mark.parametrize("file", ["../../victim.txt", "/tmp/victim-abs.txt", "..", "sub/x.sql.gz", ""])
def test_a_manifest_whose_file_leaves_the_directory_is_never_listed_nor_pruned(
    tmp_path: Path, backups: BackupDir, file: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not a backup")
    for i in range(3):
        taken(backups, f"pg-{i}", 1000.0 + i)
    body = manifest("pg-old", 1.0).to_json()
    body["file"] = file.replace("/tmp/victim-abs.txt", str(victim))
    planted(backups, "pg-old.json", body)
    assert [m.id for m in backups.manifests("pg")] == ["pg-0", "pg-1", "pg-2"]
    assert backups.prune("pg", keep=1) == ["pg-0", "pg-1"]
    assert victim.read_text() == "not a backup"
    with pytest.raises(errors.BackupError, match="outside"):
        backups.path(dataclasses.replace(manifest("pg-x", 1.0), file="../../victim.txt"))  # made, not read


def test_a_manifest_for_another_instance_or_with_a_path_for_a_name_is_not_listed(backups: BackupDir) -> None:
    planted(backups, "a.json", {**manifest("a", 1.0).to_json(), "instance": "../pg"})
    planted(backups, "b.json", {**manifest("b", 1.0).to_json(), "instance": "other"})
    assert backups.manifests() == [] and backups.manifests("pg") == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("size_bytes", "abc"),
        ("started", "yesterday"),
        ("counts", ["x"]),
        ("counts", {"t": "many"}),
        ("databases", "app"),
        ("verified", "no"),
        ("id", 7),
        ("revision", {"a": 1}),
        ("raw_bytes", True),
    ],
)
def test_a_manifest_with_a_field_of_the_wrong_type_is_not_listed(backups: BackupDir, field: str, value: object) -> None:
    taken(backups, "pg-1", 1000.0)
    planted(backups, "pg-bad.json", {**manifest("pg-bad", 2000.0).to_json(), field: value})
    assert [m.id for m in backups.manifests()] == ["pg-1"]
    assert [p.name for p in backups.unreadable()] == ["pg-bad.json"]


def test_a_prune_counts_only_the_manifests_the_key_signed(backups: BackupDir) -> None:
    for i in range(2):
        taken(backups, f"pg-{i}", 1000.0 + i)
    # forged newer manifests (no key): they must not push the real backups out
    for i in range(3):
        planted(backups, f"pg-f{i}.json", manifest(f"pg-f{i}", 5000.0 + i).to_json())
    assert backups.prune("pg", keep=2) == []
    assert {m.id for m in backups.manifests("pg")} >= {"pg-0", "pg-1"}


def test_dbstate_backups_lists_the_good_ones_and_names_a_bad_manifest_without_a_traceback(backups: BackupDir) -> None:
    import io

    from controller.cli import main

    taken(backups, "pg-1", 1000.0)
    planted(backups, "pg-bad.json", {**manifest("pg-bad", 2000.0).to_json(), "size_bytes": "abc"})
    for output in ("text", "json"):
        out, err = io.StringIO(), io.StringIO()
        code = main(["backups", "--backup-dir", str(backups.root), "--output", output], out, err)
        assert code == 0, err.getvalue()
        assert "pg-1" in out.getvalue() and "pg-bad" not in out.getvalue()
        assert "pg-bad.json: not a manifest of dbstate's" in err.getvalue() and "Traceback" not in err.getvalue()


@pytest.mark.parametrize("field, value", [("size_bytes", "abc"), ("started", 1e308), ("counts", {"t": [1]})])
def test_the_web_view_serves_its_pages_beside_a_bad_manifest(
    tmp_path: Path, backups: BackupDir, field: str, value: object
) -> None:
    from controller.views.site import Site

    taken(backups, "pg-1", 1000.0)
    planted(backups, "pg-bad.json", {**manifest("pg-bad", 2000.0).to_json(), field: value})
    site = Site(tmp_path / "no-state.db", backups.root)
    for path in ("/", "/api/overview", "/api/status", "/api/instances/pg", "/instances/pg"):
        page = site.handle(path)
        assert page is not None and page[0] in (200, 404), (path, page)
        assert "pg-bad" not in page[2]
