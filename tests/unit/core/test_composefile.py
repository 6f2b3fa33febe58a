"""Compose files as import reads them: compose's interpolation rules, and each service as compose would run it."""

from __future__ import annotations

import pytest

from controller.adapters import compose
from controller.adapters.yamlwrite import render
from controller.core import importer, live
from controller.core.composefile import ComposeError, interpolate
from controller.core.errors import DbstateError

VARS = {"SET": "v", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$SET ${SET}", "v v"),
        ("$$SET", "$SET"),
        ("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", "d d  d"),
        ("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${UNSET+alt}", "alt  alt "),
        ("${UNSET:-${SET}}", "v"),
        ("${SET:?needed}", "v"),
    ],
)
def test_interpolation_follows_compose(text, want):
    assert interpolate(text, VARS) == want


def test_a_required_variable_that_is_missing_is_an_error():
    with pytest.raises(ComposeError, match="required variable EMPTY is missing: say so"):
        interpolate("${EMPTY:?say so}", VARS)


FILE = """name: kong
services:
  db:
    image: postgres:16
    environment:
      POSTGRES_USER: kong
      POSTGRES_PASSWORD: ${KONG_PG_PASSWORD:?set it}
    volumes: ["kong_data:/var/lib/postgresql/data", "./init:/docker-entrypoint-initdb.d:ro"]
    networks: {kong-net: {aliases: [kong-database]}}
    ports: ["127.0.0.1:5433:5432"]
    restart: unless-stopped
  kong:
    image: kong:3
    environment: ["KONG_DATABASE=kong-database", "KONG_PG_HOST=kong-database", "KONG_PG_PASSWORD=${KONG_PG_PASSWORD}"]
    networks: [kong-net]
  builder:
    build: .
volumes:
  kong_data: {}
networks:
  kong-net: {external: true}
"""


def test_a_compose_file_becomes_what_compose_would_run_and_import_declares_it(tmp_path):
    (tmp_path / "compose.yml").write_text(FILE)
    (tmp_path / ".env").write_text("KONG_PG_PASSWORD='s3cret-Kong#1'\n")
    found = compose.read([tmp_path / "compose.yml"], environ={})
    db = {f.container.name: f for f in found}["kong-db-1"].container
    assert db.state == importer.NOT_RUNNING
    assert db.networks == (live.Attachment("kong-net", ("db", "kong-database")),)
    assert db.mounts == (
        live.Mount("volume", "kong_kong_data", "/var/lib/postgresql/data"),
        live.Mount("bind", f"{tmp_path}/init", "/docker-entrypoint-initdb.d"),
    )
    assert db.ports == (live.Port(5432, "tcp", "127.0.0.1", 5433),)
    assert sorted(f.container.name for f in found) == ["kong-db-1", "kong-kong-1"]  # `build:` only: no image
    result = importer.build(found, live.LiveState(live.EngineInfo("x", "1", "1")))
    assert result.adopt == {} and result.not_running == ["kong-db"]
    assert result.env == {"KONG_PG_PASSWORD": "s3cret-Kong#1"}  # the compose file's own name for it
    text = "".join(render([d], "t") for d in result.documents)
    assert "s3cret-Kong#1" not in text and "dbstate creates it" in text and "${KONG_PG_PASSWORD}" in text
    [consumer] = [d for d in result.documents if d.body["kind"] == "Consumer"]
    # KONG_DATABASE names it too (it sorts first), but a variable named like a host is what the consumer connects by
    assert consumer.body["spec"]["uses"] == [{"instance": "kong-db", "hostEnv": "KONG_PG_HOST"}]
    # an env file that holds the value already: referenced by its name there, nothing new to write
    again = importer.build(found, live.LiveState(live.EngineInfo("x", "1", "1")), {"KONG_PG_PASSWORD": "s3cret-Kong#1"})
    assert again.env == {} and again.reused == ["KONG_PG_PASSWORD"]
    # the same value under another name in the env file: that name, never a second copy
    other = importer.build(found, live.LiveState(live.EngineInfo("x", "1", "1")), {"PG_SECRET": "s3cret-Kong#1"})
    assert other.env == {} and other.reused == ["PG_SECRET"]
    # the compose name held by another value in the env file: a new name, the old value untouched
    clash = importer.build(found, live.LiveState(live.EngineInfo("x", "1", "1")), {"KONG_PG_PASSWORD": "other"})
    assert clash.env == {"KONG_DB_POSTGRES_PASSWORD": "s3cret-Kong#1"}


def test_a_broken_compose_file_is_a_clear_error_naming_it(tmp_path):
    (tmp_path / "compose.yml").write_text(FILE)
    with pytest.raises(DbstateError, match=r"compose\.yml: required variable KONG_PG_PASSWORD is missing: set it"):
        compose.read([tmp_path / "compose.yml"], environ={})
    (tmp_path / "bad.yml").write_text("services: [\n")
    with pytest.raises(DbstateError, match=r"bad\.yml: not a compose file"):
        compose.read([tmp_path / "bad.yml"], environ={})
    with pytest.raises(DbstateError, match="no such compose file"):
        compose.read([tmp_path / "nope.yml"], environ={})
