"""`dbstate validate`, `schema` and `--version` through the real console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BASE_FILES, SECRET, instance_yaml, write_tree

REPO = Path(__file__).resolve().parents[3]
DBSTATE = [sys.executable, "-m", "controller.cli"]


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES", "MARIADB", "REDIS"))}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run([*DBSTATE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def seed_env(tmp_path: Path) -> Path:
    """The shipped .env.example filled with values, as a user would."""
    lines = []
    for line in (REPO / ".workspace/.env.example").read_text().splitlines():
        if line.endswith("=") and not line.startswith("#"):
            line += f"{SECRET}-{line[:-1].lower()}"
        lines.append(line)
    path = tmp_path / "seed.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_seed_inventory_is_valid(seed_env: Path):
    r = run("validate", "--env-file", str(seed_env))
    assert r.returncode == 0, r.stderr
    assert "DatabaseInstance (6): backstage-db, infisical-db, mariadb, postgres, redis, supabase-db" in r.stdout
    assert (
        "Consumer (11): backstage, ghost, gitlab, infisical, kong, linkstack, n8n, supabase-meta, "
        "supabase-studio, wikijs, wordpress"
    ) in r.stdout
    assert SECRET not in r.stdout + r.stderr


def test_seed_inventory_json(seed_env: Path):
    r = run("validate", "--env-file", str(seed_env), "--output", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["valid"] is True and doc["errors"] == []
    assert len(doc["resources"]["DatabaseInstance"]) == 6
    assert len(doc["resources"]["Consumer"]) == 11
    assert doc["resources"]["Network"] == ["edge", "supabase-network"]
    assert SECRET not in r.stdout


def test_seed_without_variables_names_each_missing_one():
    r = run("validate", "--env-file", "/dev/null")
    assert r.returncode == 1
    assert (
        "instances/postgres.yaml:20:5: DatabaseInstance/postgres: spec.env.POSTGRES_DB: POSTGRES_DB is not set"
        in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_broken_tree_exits_1_with_all_errors_and_no_secret(tmp_path: Path):
    root = write_tree(
        tmp_path / "ds",
        {
            **BASE_FILES,
            "a.yaml": instance_yaml().replace("${PG_PASSWORD}", SECRET, 1),
            "b.yaml": "kind: [\n",
            "c.yaml": "",
        },
    )
    r = run("validate", "--dir", str(root), env={"PG_PASSWORD": "x"})
    assert r.returncode == 1
    err_lines = [line for line in r.stderr.splitlines() if line.startswith(str(root) + "/")]
    assert len(err_lines) == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr
    r = run("validate", "--dir", str(root), "--output", "json", env={"PG_PASSWORD": "x"})
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["valid"] is False
    assert {Path(e["file"]).name for e in doc["errors"]} == {"a.yaml", "b.yaml", "c.yaml"}
    assert all(e["line"] >= 1 for e in doc["errors"])
    assert SECRET not in r.stdout


def test_strict_turns_warnings_into_failure(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {**BASE_FILES, "a.yaml": instance_yaml(container="odd_name")})
    assert run("validate", "--dir", str(root), env={"PG_PASSWORD": "x"}).returncode == 0
    r = run("validate", "--dir", str(root), "--strict", env={"PG_PASSWORD": "x"})
    assert r.returncode == 1 and "warning:" in r.stderr


def test_missing_dir_is_one_line(tmp_path: Path):
    r = run("validate", "--dir", str(tmp_path / "none"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


def test_schema_is_json_schema_and_committed_copy_is_current():
    r = run("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    kinds = {m["properties"]["kind"]["const"] for m in schema["$defs"].values() if "kind" in m.get("properties", {})}
    assert kinds == {"DatabaseInstance", "Network", "Volume", "Consumer", "Host"}
    assert json.loads((REPO / "schema/desired-state.schema.json").read_text()) == schema, (
        "schema/desired-state.schema.json is stale: run `dbstate schema > schema/desired-state.schema.json`"
    )


def test_schema_accepts_the_seed_and_rejects_unknown_fields():
    import jsonschema
    import yaml

    schema = json.loads((REPO / "schema/desired-state.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    for path in sorted((REPO / "desired-state").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert list(validator.iter_errors(doc)) == [], path
            count += 1
    assert count == 25
    bad = {"apiVersion": "dbstate.io/v1", "kind": "Volume", "metadata": {"name": "v"}, "colour": 1}
    assert list(validator.iter_errors(bad))


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("dbstate ")
    r = run("--help")
    assert r.returncode == 0
    for command in ("validate", "schema", "plan", "apply", "run", "status", "ack"):
        assert command in r.stdout
    r = run("validate", "--help")
    assert "--env-file" in r.stdout and "--output" in r.stdout
