"""The command line as a user meets it: `--help` from the registry, `python -m controller`, each command's help, clear
errors for bad values, and lazy imports (validate never loads docker-py; no command loads a database client until it
probes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.commands import COMMANDS
from tests.helpers import BASE_FILES, SECRET, instance_yaml, write_tree
from tests.unit.commands.test_validate import REPO, run

IMPORTS_AFTER = """
import sys
from controller.cli import main
code = main(sys.argv[1:])
heavy = ("docker", "psycopg", "pymysql", "redis", "watchfiles", "requests")
print("LOADED", sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy}))
"""


def loaded_by(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    r = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER, *args],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(line for line in r.stdout.splitlines() if line.startswith("LOADED"))
    return r.returncode, json.loads(line.removeprefix("LOADED ").replace("'", '"')), r.stderr


def test_help_lists_every_registered_command_once():
    r = run("--help")
    assert r.returncode == 0
    listed = [line.split()[0] for line in r.stdout.split("commands:\n", 1)[1].splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    for name, info in COMMANDS.items():
        assert r.stdout.count(f"  {name} ") == 1 and info.summary in r.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_help(name: str):
    r = run(name, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: dbstate {name}")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_command_takes_an_abbreviated_option(name: str):
    """`plan --out F` was taken as `--output F`: every long option is spelled in full, or refused."""
    from controller.commands import load, parser

    p = parser(name, load(name))
    longs = sorted({o for a in p._actions for o in a.option_strings if o.startswith("--") and len(o) > 4})
    assert longs, name
    prefix = longs[-1][:-1]  # one letter short
    if any(o == prefix for o in longs):
        return
    with pytest.raises(SystemExit) as e:
        p.parse_args([prefix, "x"])
    assert e.value.code == 2


def test_python_dash_m_controller_is_the_command():
    r = subprocess.run(
        [sys.executable, "-m", "controller", "--version"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert (r.returncode, r.stdout) == (0, run("--version").stdout) and r.stdout.startswith("dbstate ")


def test_an_unknown_command_suggests_the_nearest():
    r = run("plna")
    assert r.returncode == 2 and "unknown command 'plna' (did you mean `plan`?)" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plan", "--probe-timeout", "0"), "--probe-timeout must be more than 0"),
        (("apply", "--parallel", "0"), "--parallel must be at least 1"),
        (("plan", "--probe", "--unhealthy-after", "0"), "--unhealthy-after must be at least 1"),
        (("run", "--listen", "127.0.0.1:99999"), "expected HOST:PORT with a port from 1 to 65535"),
        (("run", "--listen", "::1:9464"), "write an IPv6 address in brackets"),
        (("run", "--resync", "0"), "--resync must be more than 0"),
        (("validate", "--max-file-bytes", "0"), "--max-file-bytes must be at least 1"),
    ],
)
def test_bad_values_are_one_clear_line(args: tuple[str, ...], message: str):
    r = run(*args)
    assert r.returncode == 1 and r.stderr.startswith("dbstate: error: ") and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_validate_never_loads_docker_py_nor_a_database_client(tmp_path: Path):
    root = write_tree(tmp_path / "ds", {**BASE_FILES, "pg.yaml": instance_yaml()})
    code, loaded, err = loaded_by("validate", "--dir", str(root), env={"PG_PASSWORD": SECRET})
    assert code == 0, err
    assert loaded == []


def test_version_and_help_load_nothing_heavy():
    assert loaded_by("--version")[:2] == (0, [])
    assert loaded_by("plan", "--help")[:2] == (0, [])


@pytest.mark.parametrize("command", [("status",), ("ack", "volume-lost", "data"), ("plan",)])
def test_a_garbage_state_database_is_one_clear_line(tmp_path: Path, command: tuple[str, ...]):
    garbage = tmp_path / "state.db"
    garbage.write_text("not a database\n" * 200)
    r = run(*command, "--state", str(garbage), env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"dbstate: error: {garbage} is not a dbstate state database"), r.stderr
    assert garbage.read_text().startswith("not a database")


def test_suspend_and_resume_are_recorded_with_who_and_why(tmp_path):
    from controller.adapters import store

    env = {"PG_PASSWORD": SECRET}
    state = tmp_path / "state.db"
    ds = str(write_tree(tmp_path / "ds", {"pg.yaml": instance_yaml()}))
    r = run("suspend", "pg", "--why", "manual  upgrade to 17", "--state", str(state), "--dir", ds, env=env)
    assert r.returncode == 0 and "suspended DatabaseInstance/pg" in r.stdout, r.stderr
    with store.Store(state) as db:
        [(key, why)] = db.suspensions().items()
    assert key == "DatabaseInstance/pg" and why.startswith("by ") and why.endswith(": manual upgrade to 17")
    assert run("suspend", "pg", "--why", " ", "--state", str(state), "--dir", ds).returncode == 1  # a reason
    # a name nothing declares is refused (it would be recorded, shown, and protect nothing), and so is no directory
    r = run("suspend", "pq", "--why", "typo", "--state", str(state), "--dir", ds, env=env)
    assert r.returncode == 1 and "no DatabaseInstance 'pq' is declared" in r.stderr and "declared: pg" in r.stderr
    r = run("suspend", "pg", "--why", "x", "--state", str(state), "--dir", str(tmp_path / "none"))
    assert r.returncode == 1 and "does not exist (use --dir)" in r.stderr
    with store.Store(state) as db:
        assert list(db.suspensions()) == ["DatabaseInstance/pg"]
    assert run("resume", "pg", "--state", str(state)).returncode == 0
    r = run("resume", "pg", "--state", str(state))
    assert r.returncode == 1 and "was not suspended" in r.stderr


def test_every_allow_flag_splits_on_commas_like_its_variable(monkeypatch):
    """`--allow-compose-project a,b` (what `import` prints as the next command) is two projects, not one named "a,b"."""
    import argparse

    from controller.commands import options

    p = argparse.ArgumentParser()
    options.add_scope(p)
    monkeypatch.setenv("DBSTATE_ALLOW_COMPOSE_PROJECTS", "c, d")
    monkeypatch.setenv("DBSTATE_ALLOW_LABELS", "")
    monkeypatch.setenv("DBSTATE_ALLOW_BIND_ROOTS", "")
    ns = p.parse_args(
        ["--allow-compose-project", "a,b", "--allow-label", "x=1,y=2", "--allow-bind-root", "/srv/a/,/srv/b"]
    )
    s = options.scope(ns)
    assert s.compose_projects == frozenset({"a", "b", "c", "d"})
    assert s.labels == frozenset({("x", "1"), ("y", "2")})
    assert s.bind_roots == frozenset({"/srv/a", "/srv/b"})


def test_an_address_that_cannot_be_listened_on_is_a_clear_error_not_an_internal_one():
    import socket

    import pytest

    from controller import http
    from controller.core.errors import DbstateError

    with pytest.raises(DbstateError, match=r"cannot listen on 203\.0\.113\.9:9464: .*--listen"):
        http.serve(("203.0.113.9", 9464), None, lambda: True)  # not an address of this machine
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DbstateError, match=f"cannot listen on 127.0.0.1:{port}"):
            http.serve(("127.0.0.1", port), None, lambda: True)  # in use
