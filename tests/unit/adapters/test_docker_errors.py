"""docker-py's and requests' exceptions become dbstate's error types in exactly one place."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from controller.adapters.docker import DockerEngine, translate
from controller.core import errors


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("boom", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (api_error(500, "driver failed"), errors.EngineTransient, True),
        (api_error(503, "busy"), errors.EngineTransient, True),
        (api_error(409, "Conflict. The container name is already in use"), errors.EnginePermanent, False),
        (api_error(400, "invalid reference format"), errors.EnginePermanent, False),
        (docker.errors.NotFound("no such container"), errors.EngineNotFound, False),
        (docker.errors.ImageNotFound("no such image"), errors.ImageNotFound, False),
        (requests.exceptions.ConnectionError("Connection refused"), errors.EngineUnavailable, True),
        (requests.exceptions.ReadTimeout("timed out"), errors.EngineUnavailable, True),
        (
            docker.errors.DockerException("Error while fetching server API version: No such file or directory"),
            errors.EngineUnavailable,
            True,
        ),
    ],
)
def test_translate(exc, expected, retryable):
    out = translate(exc, "doing a thing", "unix:///x.sock")
    assert type(out) is expected
    assert errors.retryable(out) is retryable
    assert "\n" not in str(out)


def test_old_engine_is_named():
    out = translate(
        api_error(400, "client version 1.41 is too new. Maximum supported API version is 1.40"), "listing", "unix:///x"
    )
    assert "older than Docker 20.10" in str(out)


def test_unreachable_engine_raises_our_error(tmp_path):
    with DockerEngine(f"unix://{tmp_path}/none.sock") as engine, pytest.raises(errors.EngineUnavailable) as info:
        engine.observe()
    assert "cannot reach the Docker engine" in str(info.value)
    assert info.value.__cause__ is not None  # raised `from` the original


def test_which_engine_events_trigger_a_pass():
    from controller.adapters.docker import trigger_of

    def event(kind: str, action: str, actor: dict[str, object]) -> dict[str, object]:
        return {"Type": kind, "Action": action, "Actor": actor}

    assert trigger_of(event("container", "die", {"ID": "abc", "Attributes": {"name": "pg-db"}})) == (
        "container",
        "die",
        "pg-db",
        "abc",
    )
    assert trigger_of(event("container", "exec_start: sh", {"Attributes": {"name": "pg-db"}})) is None
    assert trigger_of(event("volume", "destroy", {"ID": "postgres_data", "Attributes": {"driver": "local"}})) == (
        "volume",
        "destroy",
        "postgres_data",
        "",
    )
    # the lease's own markers come and go at every renewal: never a cause for a pass
    marker = {"ID": "dbstate-lease-host-1-abc123-1764200000000", "Attributes": {"driver": "local"}}
    assert trigger_of(event("volume", "destroy", marker)) is None
    disconnect = event("network", "disconnect", {"ID": "n1", "Attributes": {"name": "edge\x1b[2J", "container": "c9"}})
    assert trigger_of(disconnect) == ("network", "disconnect", "edge?[2J", "c9")  # and the container it concerns
    # on a swarm manager: a service changed by hand, a node that went down
    scaled = event("service", "update", {"ID": "s1", "Attributes": {"name": "sw-pg", "replicas.new": "0"}})
    assert trigger_of(scaled) == ("service", "update", "sw-pg", "")
    assert trigger_of(event("node", "update", {"ID": "n1", "Attributes": {"name": "db2", "state.new": "down"}})) == (
        "node",
        "update",
        "db2",
        "",
    )
    assert trigger_of(event("service", "create", {"ID": "s2", "Attributes": {"name": "sw-pg"}})) is None


def test_an_engine_address_with_a_password_or_token_is_never_printed_with_it():
    import pytest

    from controller.adapters.docker import DockerClient
    from controller.core import errors
    from controller.core.secrets import redact_credentials

    assert redact_credentials("tcp://admin:Hunter2-pw@10.0.0.5:2376") == "tcp://admin:***@10.0.0.5:2376"
    assert redact_credentials("tcp://10.0.0.5:2376/?token=Tok-998877&x=1") == "tcp://10.0.0.5:2376/?token=***&x=1"
    assert redact_credentials("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"
    for url, secret in (
        ("tcp://admin:Hunter2-pw@127.0.0.1:9", "Hunter2-pw"),
        ("tcp://127.0.0.1:9/?token=T0k-99", "T0k-99"),
    ):
        with pytest.raises(errors.EngineError) as info:  # refused as it is made, or when it connects
            DockerClient(url, timeout=1, retry_budget=0.2).info()
        assert secret not in str(info.value) and "***" in str(info.value), str(info.value)
