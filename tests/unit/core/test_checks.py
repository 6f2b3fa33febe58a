"""Image pinning and the seed's naming conventions, table-driven."""

import pytest

from controller.core import checks, spec


def _inst(**over):
    body = {
        "engine": "postgres",
        "version": "16",
        "image": "postgres:16-alpine",
        "containerName": "pg-db",
        "networks": [{"name": "edge"}],
        "auth": {"method": "scram-sha-256", "user": "u", "password": "x"},
    }
    body.update(over)
    return spec.DatabaseInstance.model_validate(
        {"apiVersion": "dbstate.io/v1", "kind": "DatabaseInstance", "metadata": {"name": "pg"}, "spec": body}
    )


@pytest.mark.parametrize(
    ("over", "path", "fragment", "severity"),
    [
        ({"image": "postgres"}, ("spec", "image"), "not pinned", "error"),
        ({"image": "postgres:latest"}, ("spec", "image"), "`latest`", "error"),
        ({"image": "postgres:15"}, ("spec", "version"), "disagrees", "error"),
        (
            {"auth": {"method": "password", "user": "u", "password": "x"}},
            ("spec", "auth", "method"),
            "does not fit",
            "error",
        ),
        ({"auth": {"method": "md5", "user": "u"}}, ("spec", "auth", "password"), "required", "error"),
        ({"ports": ["5432:5432"]}, ("spec", "ports", 0), "every interface", "warning"),
        ({"containerName": None}, ("spec", "containerName"), "explicit", "warning"),
        ({"containerName": "weird_name"}, ("spec", "containerName"), "patterns", "warning"),
        (
            {
                "engine": "mariadb",
                "image": "mariadb:10.11",
                "version": "10.11",
                "auth": {"method": "password", "user": "u", "password": "x"},
                "policy": {"upgrade": "pg-upgrade"},
            },
            ("spec", "policy", "upgrade"),
            "use dump-restore",
            "error",
        ),
        ({"policy": {"upgradeTransfer": "link"}}, ("spec", "policy", "upgradeTransfer"), "needs upgrade", "error"),
        (
            {"policy": {"upgrade": "pg-upgrade", "upgradeTransfer": "swap"}},
            ("spec", "policy", "upgradeTransfer"),
            "from PostgreSQL 18 on",
            "error",
        ),
    ],
)
def test_check_instance(over, path, fragment, severity):
    problems = checks.check_instance(_inst(**over))
    assert len(problems) == 1, problems
    assert problems[0].path == path
    assert fragment in problems[0].message
    assert problems[0].severity == severity


@pytest.mark.parametrize(
    ("over",),
    [
        ({"image": "postgres@sha256:" + "a" * 64},),
        ({"ports": ["127.0.0.1:5432:5432"]},),
        ({"containerName": "pg-pg-1"},),
        ({"containerName": "app-postgres-1"},),
        ({"policy": {"upgrade": "pg-upgrade", "upgradeTransfer": "link"}},),
        ({"version": "18", "image": "postgres:18", "policy": {"upgrade": "pg-upgrade", "upgradeTransfer": "swap"}},),
    ],
)
def test_check_instance_clean(over):
    assert checks.check_instance(_inst(**over)) == []
