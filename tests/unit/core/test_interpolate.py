"""Interpolation of ${VAR} references and the secrets-are-references rule, table-driven."""

import pytest

from controller.core import interpolate
from controller.core.secrets import Secret

VARS = {"A": "alpha", "EMPTY": "", "DB_PASSWORD": "pw-value", "HOST": "postgres"}


@pytest.mark.parametrize(
    ("text", "value", "missing"),
    [
        ("plain", "plain", ()),
        ("${A}", "alpha", ()),
        ("x-${A}-y", "x-alpha-y", ()),
        ("${NOPE}", "", ("NOPE",)),
        ("${NOPE:-fallback}", "fallback", ()),
        ("${EMPTY:-fallback}", "fallback", ()),
        ("${EMPTY-fallback}", "", ()),
        ("${NOPE-fallback}", "fallback", ()),
        ("$$HOME", "$HOME", ()),
        ("a$$", "a$", ()),
        ("${NOPE}${NOPE}", "", ("NOPE",)),
    ],
)
def test_interpolate(text, value, missing):
    r = interpolate.interpolate(text, VARS)
    assert r.value == value
    assert r.missing == missing
    assert r.malformed is None


@pytest.mark.parametrize("text", ["${", "${A", "$A", "${1X}", "${A B}"])
def test_malformed_references(text):
    assert interpolate.interpolate(text, VARS).malformed is not None


@pytest.mark.parametrize(
    ("spec_in", "paths_and_messages"),
    [
        (
            {"env": {"POSTGRES_PASSWORD": "hunter2"}},
            [(("spec", "env", "POSTGRES_PASSWORD"), "POSTGRES_PASSWORD is a secret")],
        ),
        ({"env": {"API_TOKEN": 12345}}, [(("spec", "env", "API_TOKEN"), "API_TOKEN is a secret")]),
        ({"env": {"JWT_SECRET": "${DB_PASSWORD:-dflt}"}}, [(("spec", "env", "JWT_SECRET"), "exactly one ${VAR}")]),
        ({"env": {"X_KEY": "pre-${DB_PASSWORD}"}}, [(("spec", "env", "X_KEY"), "exactly one ${VAR}")]),
        ({"auth": {"password": "literal"}}, [(("spec", "auth", "password"), "password is a secret")]),
        ({"env": {"POSTGRES_PASSWORD": "${MISSING}"}}, [(("spec", "env", "POSTGRES_PASSWORD"), "MISSING is not set")]),
        ({"env": {"POSTGRES_PASSWORD": "${EMPTY}"}}, [(("spec", "env", "POSTGRES_PASSWORD"), "set but empty")]),
        ({"env": {"USER": "${MISSING}"}}, [(("spec", "env", "USER"), "MISSING is not set")]),
        ({"command": ["--pw", "${DB_PASSWORD}"]}, [(("spec", "command", 1), "may not stand in a list")]),
        ({"env": {"FLAG": True}}, [(("spec", "env", "FLAG"), "quote true/false")]),
        ({"env": {"BAD": "$oops"}}, [(("spec", "env", "BAD"), "malformed")]),
    ],
)
def test_resolve_spec_issues(spec_in, paths_and_messages):
    _, issues = interpolate.resolve_spec(spec_in, VARS)
    assert [(i.path,) for i in issues] == [(p,) for p, _ in paths_and_messages]
    for issue, (_, fragment) in zip(issues, paths_and_messages, strict=True):
        assert fragment in issue.message
        assert "hunter2" not in issue.message and "pw-value" not in issue.message


def test_resolve_spec_values():
    out, issues = interpolate.resolve_spec(
        {
            "env": {
                "POSTGRES_PASSWORD": "${DB_PASSWORD}",
                "HOST": "${HOST}",
                "PORT": 5432,
                "URL": "postgres://u:${DB_PASSWORD}@${HOST}/db",
            },
            "auth": {"user": "${A}"},
        },
        VARS,
    )
    assert issues == []
    env = out["env"]
    assert isinstance(env["POSTGRES_PASSWORD"], Secret) and env["POSTGRES_PASSWORD"].reveal() == "pw-value"
    assert env["POSTGRES_PASSWORD"].ref == "${DB_PASSWORD}"
    assert env["HOST"] == "postgres"
    assert env["PORT"] == "5432"
    # a value that embeds a secret variable is itself a secret
    assert isinstance(env["URL"], Secret) and env["URL"].reveal() == "postgres://u:pw-value@postgres/db"
    assert out["auth"]["user"] == "alpha"
