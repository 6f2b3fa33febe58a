"""The loader: every broken input gives a precise, located error; nothing else is lost; no secret is echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.adapters import desired
from controller.core import spec
from controller.core.errors import DesiredStateError
from controller.core.secrets import Secret
from tests.helpers import NETWORK, SECRET, VOLUME, consumer_yaml, instance_yaml, write_tree

VARS = {"PG_PASSWORD": SECRET}
BASE = {"net.yaml": NETWORK, "vol.yaml": VOLUME}

# (case, files added to BASE, expected errors as (file, line, column or None, fragment))
CASES = [
    (
        "unknown field",
        {"i.yaml": instance_yaml(extra="  colour: blue\n")},
        [("i.yaml", 23, 3, "spec.colour: unknown field")],
    ),
    ("unknown top-level field", {"i.yaml": "extra: 1\n" + instance_yaml()}, [("i.yaml", 1, 1, "extra: unknown field")]),
    (
        "wrong type",
        {"i.yaml": instance_yaml(extra="  restartPolicy: [1]\n")},
        [("i.yaml", 23, 3, "spec.restartPolicy: Input should be")],
    ),
    (
        "wrong enum",
        {"i.yaml": instance_yaml().replace("engine: postgres", "engine: oracle")},
        [("i.yaml", 6, 3, "spec.engine:")],
    ),
    ("bad name", {"i.yaml": instance_yaml(name="Bad_Name")}, [("i.yaml", 4, 3, "metadata.name:")]),
    (
        "missing field",
        {
            "i.yaml": instance_yaml().replace(
                "  auth:\n    method: scram-sha-256\n    user: app\n    password: ${PG_PASSWORD}\n", ""
            )
        },
        [("i.yaml", 5, 1, "spec.auth: required field is missing")],
    ),
    (
        "dangling network",
        {"i.yaml": instance_yaml(network="nowhere")},
        [("i.yaml", 11, 7, "spec.networks[0].name: Network 'nowhere' is not declared")],
    ),
    (
        "dangling volume",
        {"i.yaml": instance_yaml(volume="nothing")},
        [("i.yaml", 14, 7, "spec.volumes[0].source: Volume 'nothing' is not declared")],
    ),
    (
        "dangling instance",
        {"i.yaml": instance_yaml(), "c.yaml": consumer_yaml(instance="ghost")},
        [("c.yaml", 7, 11, "spec.uses[0].instance: DatabaseInstance 'ghost' is not declared")],
    ),
    (
        "duplicate container name",
        {
            "a.yaml": instance_yaml(name="pg", container="same-db"),
            "b.yaml": instance_yaml(name="pg2", container="same-db", volume=None),  # one volume, one declaration
        },
        [("a.yaml", 9, 3, "claimed by 2 resources"), ("b.yaml", 9, 3, "claimed by 2 resources")],
    ),
    (
        "duplicate name",
        {
            "a.yaml": instance_yaml(name="pg", container="a-db"),
            "b.yaml": instance_yaml(name="pg", container="b-db", volume=None),
        },
        [("a.yaml", 4, 3, "declared 2 times"), ("b.yaml", 4, 3, "declared 2 times")],
    ),
    ("unpinned image", {"i.yaml": instance_yaml(image="postgres")}, [("i.yaml", 8, 3, "not pinned")]),
    ("latest image", {"i.yaml": instance_yaml(image="postgres:latest")}, [("i.yaml", 8, 3, "not pinned")]),
    (
        "version disagrees",
        {"i.yaml": instance_yaml(image="postgres:15-alpine")},
        [("i.yaml", 7, 3, "disagrees with the image tag")],
    ),
    (
        "literal secret",
        {"i.yaml": instance_yaml().replace("POSTGRES_PASSWORD: ${PG_PASSWORD}", f"POSTGRES_PASSWORD: {SECRET}")},
        [("i.yaml", 18, 5, "spec.env.POSTGRES_PASSWORD: POSTGRES_PASSWORD is a secret")],
    ),
    (
        "missing variable",
        {"i.yaml": instance_yaml().replace("${PG_PASSWORD}", "${NOT_SET_ANYWHERE}")},
        [
            ("i.yaml", 18, 5, "NOT_SET_ANYWHERE is not set"),
            ("i.yaml", 22, 5, "auth.password: NOT_SET_ANYWHERE is not set"),
        ],
    ),
    (
        "yaml syntax error",
        {"i.yaml": "apiVersion: dbstate.io/v1\nkind: [Network\nmetadata: {name: x}\n"},
        [("i.yaml", 3, 9, "YAML syntax")],
    ),
    ("tab indentation", {"i.yaml": "a:\n\tb: 1\n"}, [("i.yaml", 2, 1, "YAML syntax")]),
    ("empty file", {"i.yaml": ""}, [("i.yaml", 1, 1, "empty file")]),
    ("comment-only file", {"i.yaml": "# nothing here\n"}, [("i.yaml", 1, 1, "empty file")]),
    ("not a mapping", {"i.yaml": "- a\n- b\n"}, [("i.yaml", 1, 1, "must be a mapping")]),
    (
        "scalar document",
        {"i.yaml": NETWORK.replace("edge", "e2") + "---\njust text\n"},
        [("i.yaml", 5, 1, "must be a mapping")],
    ),
    ("unknown kind", {"i.yaml": NETWORK.replace("Network", "Router")}, [("i.yaml", 2, 1, "unknown kind")]),
    (
        "missing kind",
        {"i.yaml": "apiVersion: dbstate.io/v1\nmetadata: {name: x}\n"},
        [("i.yaml", 1, 1, "kind: required")],
    ),
    ("wrong apiVersion", {"i.yaml": NETWORK.replace("v1", "v9")}, [("i.yaml", 1, 1, "apiVersion:")]),
    (
        "duplicate key",
        {"i.yaml": NETWORK + "kind: Network\n"},
        [("i.yaml", 4, 1, "duplicate key 'kind' (first on line 2)")],
    ),
    ("invalid utf-8", {"i.yaml": None}, [("i.yaml", 2, 7, "not valid UTF-8")]),
    (
        "consumer cannot reach",
        {
            "i.yaml": instance_yaml(),
            "n2.yaml": NETWORK.replace("edge", "other"),
            "c.yaml": consumer_yaml(network="other"),
        },
        [("c.yaml", 7, 11, "shares no network with pg (edge)")],
    ),
]


@pytest.mark.parametrize(("case", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_inputs(tmp_path: Path, case, files, expected):
    root = write_tree(tmp_path / "ds", {**BASE, **{k: v for k, v in files.items() if v is not None}})
    if case == "invalid utf-8":
        (root / "i.yaml").write_bytes(b"apiVersion: dbstate.io/v1\nkind: \xff\xfe\n")
    loaded = desired.load(root, environ=VARS)
    errors = loaded.errors
    got = [(Path(e.file).name, e.line, e.column) for e in errors]
    want = [(f, line, col) for f, line, col, _ in expected]
    assert [(f, line) for f, line, _ in got] == [(f, line) for f, line, _ in want], [str(e) for e in errors]
    for err, (_, _, col, fragment) in zip(errors, expected, strict=True):
        if col is not None:
            assert err.column == col, str(err)
        assert fragment in str(err), str(err)
        assert SECRET not in str(err)
        assert str(err).startswith(f"{err.file}:{err.line}:{err.column}: ")
    assert not loaded.state.complete


def test_error_format_names_kind_and_field(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {**BASE, "i.yaml": instance_yaml(extra="  colour: blue\n")})
    [err] = desired.load(root, environ=VARS).errors
    assert str(err) == f"{root}/i.yaml:23:3: DatabaseInstance/pg: spec.colour: unknown field"


def test_all_errors_reported_not_only_the_first(tmp_path: Path):
    root = write_tree(
        tmp_path / "ds",
        {**BASE, "a.yaml": instance_yaml(extra="  colour: blue\n  size: 3\n"), "b.yaml": "- x\n", "c.yaml": ""},
    )
    assert len(desired.load(root, environ=VARS).errors) == 4


def test_one_bad_file_does_not_stop_the_rest(tmp_path: Path):
    root = write_tree(
        tmp_path / "ds",
        {
            **BASE,
            "good.yaml": instance_yaml(name="good", container="good-db"),
            "bad.yaml": instance_yaml(name="bad", container="bad-db", extra="  colour: blue\n"),
        },
    )
    loaded = desired.load(root, environ=VARS)
    assert [i.metadata.name for i in loaded.state.instances] == ["good"]
    assert ("DatabaseInstance", "bad") in loaded.state.held_back
    assert "bad-db" in loaded.state.held_back_containers
    assert not loaded.state.complete


def test_missing_variable_holds_back_only_that_resource(tmp_path: Path):
    other = instance_yaml(name="other", container="other-db").replace("PG_PASSWORD", "OTHER_PASSWORD")
    root = write_tree(tmp_path / "ds", {**BASE, "a.yaml": instance_yaml(), "b.yaml": other})
    loaded = desired.load(root, environ=VARS)
    assert [i.metadata.name for i in loaded.state.instances] == ["pg"]
    assert [str(e).split(": ", 1)[1] for e in loaded.errors] == [
        "DatabaseInstance/other: spec.env.POSTGRES_PASSWORD: OTHER_PASSWORD is not set",
        "DatabaseInstance/other: spec.auth.password: OTHER_PASSWORD is not set",
    ]


def test_consumer_of_broken_instance_is_held_back_with_the_reason(tmp_path: Path):
    root = write_tree(
        tmp_path / "ds", {**BASE, "i.yaml": instance_yaml(extra="  colour: x\n"), "c.yaml": consumer_yaml()}
    )
    loaded = desired.load(root, environ=VARS)
    assert any("depends on DatabaseInstance/pg, which has errors" in str(e) for e in loaded.errors)
    assert ("Consumer", "app") in loaded.state.held_back


def test_files_found_recursively_hidden_skipped(tmp_path: Path):
    root = write_tree(
        tmp_path / "ds",
        {
            "a/b/net.yml": NETWORK,
            ".hidden/x.yaml": "garbage: [",
            "a/.x.yaml": "garbage: [",
            "notes.txt": "not yaml",
            "vol.yaml": VOLUME,
        },
    )
    loaded = desired.load(root, environ={})
    assert loaded.errors == ()
    assert [Path(f).name for f in loaded.files] == ["vol.yaml", "net.yml"]
    assert loaded.state.networks[0].metadata.name == "edge"


def test_several_documents_per_file(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {"all.yaml": "---\n".join([NETWORK, VOLUME, instance_yaml()]) + "---\n"})
    loaded = desired.load(root, environ=VARS)
    assert loaded.errors == ()
    assert len(loaded.state.instances) == 1


def test_env_file_first_then_environment(tmp_path: Path):
    env = tmp_path / "x.env"
    env.write_text("# comment\nexport PG_PASSWORD='from-file'\nOTHER=\"a b\" \n")
    variables, problems, used = desired.load_variables(env, {"PG_PASSWORD": "from-env", "ONLY_ENV": "1"})
    assert problems == [] and used == str(env)
    assert variables["PG_PASSWORD"] == "from-file"
    assert variables["ONLY_ENV"] == "1"
    assert variables["OTHER"] == "a b"


def test_explicit_env_file_must_exist(tmp_path: Path):
    with pytest.raises(DesiredStateError, match="does not exist"):
        desired.load_variables(tmp_path / "missing.env", {})


def test_missing_directory_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DesiredStateError, match="does not exist"):
        desired.load(tmp_path / "nope")


def test_resources_are_resolved_and_secret(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {**BASE, "i.yaml": instance_yaml()})
    [inst] = desired.load(root, environ=VARS).state.instances
    assert inst.spec.auth.password is not None and inst.spec.auth.password.reveal() == SECRET
    assert SECRET not in repr(inst)
    assert inst.spec.restart_policy is spec.RestartPolicy.UNLESS_STOPPED
    assert inst.spec.policy.deletion_protection is True


@pytest.mark.parametrize("kind", ["Volume", "Network", "DatabaseInstance", "Consumer"])
def test_labels_under_dbstates_prefix_are_an_error_at_the_key(tmp_path: Path, kind: str):
    docs = {
        "Volume": "apiVersion: dbstate.io/v1\nkind: Volume\nmetadata:\n  name: v\n  labels:\n"
        '    ok: "1"\n    io.dbstate.lease: "true"\n',
        "Network": "apiVersion: dbstate.io/v1\nkind: Network\nmetadata:\n  name: n\n  labels:\n"
        '    ok: "1"\n    io.dbstate.managed: "true"\n',
        "DatabaseInstance": instance_yaml().replace(
            "metadata:\n  name: pg\n", 'metadata:\n  name: pg\n  labels:\n    ok: "1"\n    io.dbstate.name: "x"\n'
        ),
        "Consumer": "apiVersion: dbstate.io/v1\nkind: Consumer\nmetadata:\n  name: app\n  labels:\n"
        '    ok: "1"\n    io.dbstate.kind: "Volume"\nspec: {containerName: app}\n',
    }
    root = write_tree(tmp_path / "ds", {**BASE, "x.yaml": docs[kind]})
    loaded = desired.load(root, environ=VARS)
    (err,) = loaded.errors
    assert err.line == 7 and err.column == 5 and err.field and err.field.startswith("metadata.labels.io.dbstate.")
    assert "dbstate's own" in err.message
    assert (kind, {"Volume": "v", "Network": "n", "DatabaseInstance": "pg", "Consumer": "app"}[kind]) in (
        loaded.state.held_back
    )


def test_only_regular_files_inside_the_repository_are_read(tmp_path: Path):
    import os
    import time

    root = write_tree(tmp_path / "ds", {**BASE, "pg.yaml": instance_yaml()})
    (root / "zero.yaml").symlink_to("/dev/zero")  # would be read without end
    os.mkfifo(root / "fifo.yaml")  # would block forever
    (root / "inside.yaml").symlink_to(root / "vol.yaml")  # fine: a regular file in the directory
    outside = tmp_path / "outside.yaml"
    outside.write_text(VOLUME)
    (root / "out.yaml").symlink_to(outside)
    t0 = time.monotonic()
    loaded = desired.load(root, environ=VARS)
    assert time.monotonic() - t0 < 5
    errors = {Path(e.file).name: (e.line, e.column, e.message) for e in loaded.errors}
    assert errors["zero.yaml"][:2] == (1, 1) and "outside the desired-state directory" in errors["zero.yaml"][2]
    assert errors["fifo.yaml"] == (1, 1, "not a regular file (a device, a FIFO or a socket): not read")
    assert "outside the desired-state directory" in errors["out.yaml"][2]
    # read, not refused (its volume is then declared twice: a duplicate, at its line)
    assert errors["inside.yaml"][0] == 3 and "not read" not in errors["inside.yaml"][2]
    assert set(loaded.state.unreadable_files) >= {str(root / "zero.yaml"), str(root / "fifo.yaml")}


def test_size_and_document_limits(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {**BASE, "pg.yaml": instance_yaml()})
    small = desired.Limits(file_bytes=200)
    errors = [e for e in desired.load(root, environ=VARS, limits=small).errors if e.file.endswith("pg.yaml")]
    assert errors and "more than the 200 a file may have (--max-file-bytes)" in errors[0].message
    few = desired.Limits(documents=2)
    loaded = desired.load(root, environ=VARS, limits=few)
    assert any("more than 2 documents" in e.message for e in loaded.errors)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!bool maybe\n", "this value cannot be read as !!bool"),
        ("a: !!int 12x\n", "this value cannot be read as !!int"),
        ("a: !!binary aGVsbG8=\n", "is not allowed: only the core schema"),
        ("a: !custom x\n", "is not allowed: only the core schema"),
        ("a: !!set {x}\n", "is not allowed: only the core schema"),
        ("a: " + "[" * 500 + "]" * 500 + "\n", "nested deeper than 64 levels"),
    ],
)
def test_yaml_beyond_the_core_schema_is_a_located_error(text: str, message: str):
    loaded = desired.load_text(text, "t.yaml", {})
    (err,) = loaded.errors
    assert err.file == "t.yaml" and err.line == 1 and message in err.message


def test_secrets_are_known_by_use_and_by_value_not_only_by_name(tmp_path: Path):
    inst = instance_yaml(volume=None).replace(
        "    POSTGRES_PASSWORD: ${PG_PASSWORD}\n",
        "    POSTGRES_PASSWORD: ${DB_PASS}\n"  # DB_PASS is no secret name: its use makes it one
        "    DATABASE_URL: postgres://app:${DB_PASS}@pg/app\n"
        "    BACKUP_TARGET: ${SAME_VALUE}\n",  # another name, the same value as a secret
    )
    env = tmp_path / "e.env"
    env.write_text("DB_PASS=hunter2-by-use\nSAME_VALUE=hunter2-by-use\nUNUSED_TOKEN=never-used-but-secret\n")
    root = write_tree(tmp_path / "ds", {"net.yaml": NETWORK, "pg.yaml": inst})
    loaded = desired.load(root, env, environ={"PG_PASSWORD": SECRET})
    assert loaded.errors == (), [str(e) for e in loaded.errors]
    pg_env = loaded.state.instances[0].spec.env
    for key in ("POSTGRES_PASSWORD", "DATABASE_URL", "BACKUP_TARGET"):
        assert isinstance(pg_env[key], Secret), key
    assert pg_env["POSTGRES_USER"] == "app"
    assert {"hunter2-by-use", "never-used-but-secret"} <= loaded.secret_values
